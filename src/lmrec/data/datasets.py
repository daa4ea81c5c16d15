"""Named datasets (``ml-100k``, ``ml-1m``, ``beauty``, ``ml-latest-small``, ``lastfm``) resolved from a
configurable data directory.

Data directory, first that applies: ``$LMREC_DATA_DIR``; ``../shared/data`` beside the working
directory or beside this checkout, when it exists; else ``$XDG_CACHE_HOME/lmrec`` (``~/.cache/lmrec``),
which is where :func:`fetch` puts downloads.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from lmrec.data.download import download, extract_zip
from lmrec.data.processing import ProcessingConfig
from lmrec.data.readers import ColumnMapping, normalise_interactions, normalise_items, read_table
from lmrec.errors import DataValidationError

_REPO_ROOT = Path(__file__).resolve().parents[3]


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lmrec"


def data_dir() -> Path:
    if env := os.environ.get("LMREC_DATA_DIR"):
        return Path(env)
    for candidate in (Path.cwd() / ".." / "shared" / "data", _REPO_ROOT.parent / "shared" / "data"):
        if candidate.is_dir():
            return candidate.resolve()
    return cache_dir()


def _genres_from_flags(df: pl.DataFrame, names: list[str]) -> pl.Series:
    flags = df.select(pl.col(c) == "1" for c in names)
    return pl.Series([
        "|".join(n for n, f in zip(names, row, strict=True) if f) for row in flags.iter_rows()
    ])


_ML100K_GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
                  "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
                  "Thriller", "War", "Western"]


def _ml100k(root: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    raw = root / "movielens-100k" / "raw"
    ev_path = raw / "u.data"
    events = read_table(ev_path, separator="\t", has_header=False,
                        new_columns=["user_id", "item_id", "rating", "timestamp"])
    events = normalise_interactions(events, ev_path)
    it_path = raw / "u.item"
    cols = ["item_id", "title", "release_date", "video_date", "url", *_ML100K_GENRES]
    items = read_table(it_path, separator="|", has_header=False, new_columns=cols, encoding="latin-1")
    items = items.with_columns(_genres_from_flags(items, _ML100K_GENRES).alias("genres"))
    return events, normalise_items(items.select("_row", "item_id", "title", "genres"), it_path, "item_id")


def _read_dat(path: Path, names: list[str]) -> pl.DataFrame:
    """GroupLens ``::``-separated files (latin-1): polars only splits on one byte, so split by hand."""
    if not path.exists():
        raise DataValidationError("file not found", path=path)
    lines = path.read_bytes().decode("latin-1").splitlines()
    parts = pl.Series("line", lines).str.split_exact("::", len(names) - 1).struct.rename_fields(names)
    return parts.struct.unnest().with_row_index("_row", offset=1)


def _ml1m(root: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    base = root / "movielens-1m"
    derived = base / "derived" / "interactions_original_ids.tsv.gz"
    if derived.exists():
        events = normalise_interactions(read_table(derived), derived,
                                        ColumnMapping(user="user_id", item="movie_id", timestamp="timestamp"))
    else:
        path = base / "raw" / "ratings.dat"
        events = normalise_interactions(_read_dat(path, ["user_id", "item_id", "rating", "timestamp"]), path)
    movies = base / "derived" / "movies.tsv"
    if movies.exists():
        items = normalise_items(read_table(movies).drop("seqrecbench_item_id"), movies, "movie_id")
    else:
        path = base / "raw" / "movies.dat"
        items = normalise_items(_read_dat(path, ["item_id", "title", "genres"]), path, "item_id")
    return events, items


def _beauty(root: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    base = root / "amazon-beauty" / "derived" / "seqrecbench"
    ev, it = base / "interactions.tsv.gz", base / "items.tsv.gz"
    return normalise_interactions(read_table(ev), ev), normalise_items(read_table(it), it, "item_id")


def _ml_latest_small(root: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    # This copy has no header rows (README of the shared folder); the columns are GroupLens's.
    raw = root / "movielens-latest-small" / "raw"
    ev_path, it_path = raw / "ratings.csv", raw / "movies.csv"
    events = read_table(ev_path, has_header=False, new_columns=["user_id", "item_id", "rating", "timestamp"])
    items = read_table(it_path, has_header=False, new_columns=["item_id", "title", "genres"])
    return normalise_interactions(events, ev_path), normalise_items(items, it_path, "item_id")


def _lastfm(root: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """HetRec 2011 Last.fm: each user's (up to 50) most played artists with play counts as ratings.

    The file has no timestamps and lists a user's artists by artist id, which the crawl assigned
    in order of discovery: a leave-one-out split in file order would hold out each user's most
    recently *crawled* artist. Each user's artists are therefore put in a random order (fixed
    seed), so the split holds out a random artist per user, as usual for data without time.
    """
    base = root / "lastfm" / "hetrec2011-lastfm-2k"
    ev_path, it_path = base / "user_artists.dat", base / "artists.dat"
    events = read_table(ev_path, separator="\t")
    order = np.random.default_rng(0).permutation(events.height)
    events = events.with_columns(pl.Series("timestamp", order))
    items = read_table(it_path, separator="\t").select("_row", "id", "name")
    return (normalise_interactions(events, ev_path, ColumnMapping(user="userID", item="artistID", rating="weight")),
            normalise_items(items, it_path, "id"))


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str
    loader: Callable[[Path], tuple[pl.DataFrame, pl.DataFrame]]
    folder: str
    processing: ProcessingConfig = field(default_factory=ProcessingConfig)
    like_threshold: float | None = None  # default like / dislike rule (data.labels) when the config sets none
    url: str | None = None
    md5: str | None = None
    archive_members: dict[str, str] = field(default_factory=dict)


DATASETS: dict[str, DatasetSpec] = {
    "ml-100k": DatasetSpec(
        "ml-100k", "MovieLens 100K: 943 users, 1,682 movies, 100,000 ratings with timestamps; titles, genres",
        _ml100k, "movielens-100k/raw", like_threshold=4.0,
        url="https://files.grouplens.org/datasets/movielens/ml-100k.zip",
        md5="0e33842e24a9c977be4e0107933c0723",
        archive_members={"ml-100k/u.data": "u.data", "ml-100k/u.item": "u.item", "ml-100k/u.user": "u.user"},
    ),
    "ml-1m": DatasetSpec(
        "ml-1m", "MovieLens 1M, 5-core: 6,040 users, 3,416 movies, 999,611 events; titles, genres",
        _ml1m, "movielens-1m/raw",
        # The public benchmark set (SASRec/BERT4Rec) keeps items with >= 5 events; the shared copy
        # already is that set, a fresh GroupLens download becomes it through this filter.
        processing=ProcessingConfig(min_user_events=5, min_item_events=5),
        url="https://files.grouplens.org/datasets/movielens/ml-1m.zip",
        md5="c4d9eecfca2ab87c1945afe126590906",
        archive_members={"ml-1m/ratings.dat": "ratings.dat", "ml-1m/movies.dat": "movies.dat",
                         "ml-1m/users.dat": "users.dat"},
    ),
    "beauty": DatasetSpec(
        "beauty", "Amazon Beauty 2014, 5-core with titles: 22,332 users, 12,086 items, 198,215 events",
        _beauty, "amazon-beauty/derived/seqrecbench",
    ),
    "ml-latest-small": DatasetSpec(
        "ml-latest-small", "MovieLens latest-small (2015): 706 users, 8,552 movies, 100,023 ratings with "
        "timestamps; titles, genres", _ml_latest_small, "movielens-latest-small/raw", like_threshold=4.0,
    ),
    "lastfm": DatasetSpec(
        "lastfm", "Last.fm (HetRec 2011) plays: 1,892 users, 17,632 artists, 92,834 (user, artist, play count) "
        "rows without timestamps (random order per user); artist names", _lastfm, "lastfm/hetrec2011-lastfm-2k",
    ),
}


def locate(name: str) -> Path | None:
    """The first of the data directory and the download cache that holds dataset ``name``."""
    folder = DATASETS[name].folder
    return next((root for root in (data_dir(), cache_dir()) if (root / folder).is_dir()), None)


def ensure_available(name: str, *, url: str | None = None, md5: str | None = None) -> Path:
    """Where dataset ``name`` is, downloading it into the cache first when it is nowhere and has a
    public download (checksummed). Raises :class:`DownloadError` when that download fails."""
    root = locate(name)
    if root is None:
        fetch(name, url=url, md5=md5)
        root = cache_dir()
    return root


def load_named(name: str, root: Path | None = None) -> tuple[pl.DataFrame, pl.DataFrame, DatasetSpec]:
    """Normalised events and items of a named dataset, read from the data directory (or, when it
    is not there, from the download cache)."""
    spec = DATASETS[name]
    root = root or locate(name) or data_dir()
    try:
        events, items = spec.loader(root)
    except DataValidationError as exc:
        if "file not found" in str(exc):
            hint = f"run `lmrec download {name}` (needs network)" if spec.url else "copy it there"
            raise DataValidationError(
                f"dataset {name!r} not found under data directory {root} ({exc}); set LMREC_DATA_DIR or {hint}"
            ) from exc
        raise
    return events, items, spec


def fetch(name: str, *, root: Path | None = None, url: str | None = None, md5: str | None = None) -> Path:
    """Download a named dataset into ``root`` (default: the cache dir) and verify its checksum."""
    spec = DATASETS[name]
    if spec.url is None:
        raise DataValidationError(f"dataset {name!r} has no public download; place its files under {spec.folder}")
    root = root or cache_dir()
    target = root / spec.folder
    target.parent.mkdir(parents=True, exist_ok=True)
    archive = download(url or spec.url, root / f"{name}.zip", md5=md5 if url else spec.md5)
    try:
        extract_zip(archive, spec.archive_members, target)
    finally:
        archive.unlink(missing_ok=True)
    return target
