"""Recommendations on a device from a bundle written by ``lmrec export``, with numpy and
onnxruntime only (no torch, no polars: nothing here imports them).

    from lmrec.edge import EdgeRecommender
    rec = EdgeRecommender("bundle/")
    rec.recommend(["1193", "661"], k=10)          # [(item_id, score), ...] for an anonymous history
    rec.add_event("alice", "1193")                # live events kept on the device
    rec.recommend_user("alice")
    rec.add_items("new-items.npz")                # items added after export (content models)

Command line: ``python -m lmrec.edge --bundle BUNDLE --events EVENTS.csv --k 10 --output recs.csv``.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from lmrec.edge.quantise import dequantise_rows
from lmrec.errors import LmrecError

FORMAT, VERSION = "lmrec-edge", 1
MANIFEST = "manifest.json"
CHUNK = 256  # histories encoded together


class EdgeError(LmrecError):
    """A bundle that cannot be used (missing or altered file, wrong format) or an unknown id."""


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Bundle:
    """An opened bundle: the ONNX query network, its per-token tables and the item vectors
    (int8 arrays dequantised on load), every file checked against the manifest's sha256."""

    def __init__(self, path: str | Path, *, verify: bool = True) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise EdgeError("the edge runtime needs onnxruntime: pip install onnxruntime numpy") from None
        self.path = Path(path)
        manifest_path = self.path / MANIFEST
        if not manifest_path.is_file():
            raise EdgeError(f"{self.path} is not an edge bundle (no {MANIFEST}); create one with `lmrec export`")
        try:
            m = json.loads(manifest_path.read_text())
        except json.JSONDecodeError as exc:
            raise EdgeError(f"{manifest_path}: not valid JSON ({exc})") from None
        if m.get("format") != FORMAT or m.get("version") != VERSION:
            raise EdgeError(f"{manifest_path}: format {m.get('format')!r} version {m.get('version')!r}; this "
                            f"runtime reads {FORMAT!r} version {VERSION}")
        for name, digest in m["files"].items():
            file = self.path / name
            if not file.is_file():
                raise EdgeError(f"{file}: missing from the bundle (listed in {MANIFEST})")
            if verify and sha256(file) != digest:
                raise EdgeError(f"{file}: checksum mismatch (the file was altered or damaged); export again")
        self.manifest = m
        self.max_len: int | None = m["max_len"]
        ids = json.loads((self.path / m["vocabulary"]).read_text())
        self.item_ids: list = list(ids)
        self._int_ids = bool(ids) and isinstance(ids[0], int)
        self._index = {str(i): j for j, i in enumerate(ids)}
        self.tables = {name: self._array(entry) for name, entry in m["tables"].items()}  # (n_items + 1, *)
        entry = m["items"]  # (n_items, D); a tied model's are its input table without the padding row
        self.items = self.tables[entry["table"]][entry["rows_from"]:] if "table" in entry else self._array(entry)
        options = ort.SessionOptions()
        options.log_severity_level = 3  # warnings about unused initialisers are not the user's business
        # Idle onnxruntime threads spin by default and starve numpy's scoring threads on a small
        # device (p99 of one Beauty request 8 ms instead of 1 on 2 cores).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(self.path / m["encoder"]), options, providers=["CPUExecutionProvider"])
        self.inputs = m["inputs"]

    def _array(self, entry: dict) -> np.ndarray:
        data = np.load(self.path / entry["file"])
        if entry["dtype"] == "int8":
            return dequantise_rows(data, np.load(self.path / entry["scale"]))
        return data.astype(np.float32, copy=False)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def index(self, item_id) -> int:
        """Dense index of an original item id (given as it is in the bundle or as text)."""
        j = self._index.get(str(item_id))
        if j is None:
            raise EdgeError(f"unknown item_id {item_id!r}: not in the bundle's {self.n_items:,} items")
        return j

    def query(self, tokens: np.ndarray) -> np.ndarray:
        """tokens (B, L) int64, item index + 1, left-padded with 0 -> (B, D) query vectors."""
        feed = {"tokens": tokens.astype(np.int64, copy=False)} | {n: self.tables[n] for n in self.inputs[1:]}
        return self.session.run(["query"], feed)[0]

    def append_items(self, ids: list, tables: dict[str, np.ndarray], items: np.ndarray) -> None:
        """New items' per-token table rows and item vectors (``lmrec export-items``)."""
        clash = [i for i in ids if str(i) in self._index]
        if clash:
            raise EdgeError(f"{len(clash)} new item id(s) are already in the bundle, e.g. {clash[:5]}")
        missing = set(self.tables) - set(tables)
        if missing or items.shape[1:] != self.items.shape[1:]:
            raise EdgeError(f"new items do not fit this bundle (tables {sorted(tables)} vs {sorted(self.tables)}, "
                            f"item vectors {items.shape[1:]} vs {self.items.shape[1:]}): export them from its run")
        for name in self.tables:
            self.tables[name] = np.concatenate([self.tables[name], tables[name].astype(np.float32)])
        entry = self.manifest["items"]
        if "table" in entry:  # tied: the appended table rows are the new items' vectors too
            self.items = self.tables[entry["table"]][entry["rows_from"]:]
        else:
            self.items = np.concatenate([self.items, items.astype(np.float32)])
        for i in ids:
            i = int(i) if self._int_ids else str(i)
            self._index[str(i)] = len(self.item_ids)
            self.item_ids.append(i)


class EdgeRecommender:
    """Top-k recommendations from histories of original item ids; seen items excluded (the
    whole history, though the network reads only its last ``max_len`` events)."""

    def __init__(self, bundle: str | Path | Bundle, *, verify: bool = True) -> None:
        self.bundle = bundle if isinstance(bundle, Bundle) else Bundle(bundle, verify=verify)
        self.histories: dict[str, list[int]] = defaultdict(list)  # live events: user -> item indices

    def recommend_indices(self, histories: list[np.ndarray], k: int = 10,
                          exclude_seen: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Per history of item indices: top-k indices and scores, (B, k); unfilled slots -1 / -inf.
        Ties are ordered by item index, so results are deterministic."""
        b = self.bundle
        n = len(b.items)
        kk = min(k, n)
        top = np.full((len(histories), k), -1, dtype=np.int64)
        top_scores = np.full((len(histories), k), -np.inf, dtype=np.float32)
        window = [np.asarray(h, dtype=np.int64)[-b.max_len :] if b.max_len else np.asarray(h, np.int64)
                  for h in histories]
        lengths = np.array([len(w) for w in window])
        order = np.argsort(lengths, kind="stable")  # similar lengths together: padding costs nothing
        for start in range(0, len(order), CHUNK):
            rows = order[start : start + CHUNK]
            longest = max(1, int(lengths[rows].max()))
            tokens = np.zeros((len(rows), longest), dtype=np.int64)  # (C, longest) left-padded
            for r, row in enumerate(rows):
                if lengths[row]:
                    tokens[r, longest - lengths[row] :] = window[row] + 1
            scores = b.query(tokens) @ b.items.T  # (C, n_items)
            if exclude_seen:
                for r, row in enumerate(rows):
                    scores[r, np.asarray(histories[row], dtype=np.int64)] = -np.inf
            part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk] if kk < n else np.tile(np.arange(n), (len(rows), 1))
            for r, row in enumerate(rows):
                cand = part[r]
                best = cand[np.lexsort((cand, -scores[r, cand]))]  # score descending, then index
                s = scores[r, best]
                top[row, :kk] = np.where(np.isneginf(s), -1, best)
                top_scores[row, :kk] = s
        return top, top_scores

    def _indices(self, history: list) -> np.ndarray:
        return np.array([self.bundle.index(i) for i in history], dtype=np.int64)

    def recommend_many(self, histories: list[list], k: int = 10, exclude_seen: bool = True) -> list[list[tuple]]:
        top, scores = self.recommend_indices([self._indices(h) for h in histories], k, exclude_seen)
        ids = self.bundle.item_ids
        return [[(ids[i], float(s)) for i, s in zip(t, sc, strict=True) if i >= 0] for t, sc in zip(top, scores,
                                                                                                      strict=True)]

    def recommend(self, history: list, k: int = 10, exclude_seen: bool = True) -> list[tuple]:
        """[(item_id, score)] for one history of original item ids, oldest first."""
        return self.recommend_many([history], k, exclude_seen)[0]

    def add_event(self, user, item) -> None:
        """Record a live event on the device (the item must be in the bundle)."""
        self.histories[str(user)].append(self.bundle.index(item))

    def recommend_user(self, user, k: int = 10, exclude_seen: bool = True) -> list[tuple]:
        """From the user's live events; a user without any gets the empty-history list."""
        history = self.histories.get(str(user), [])
        top, scores = self.recommend_indices([np.array(history, dtype=np.int64)], k, exclude_seen)
        return [(self.bundle.item_ids[i], float(s)) for i, s in zip(top[0], scores[0], strict=True) if i >= 0]

    def add_items(self, path: str | Path) -> int:
        """Append items exported after the bundle (``lmrec export-items``); returns how many."""
        try:
            with np.load(path) as f:
                data = {k: f[k] for k in f.files}
        except (OSError, ValueError) as exc:
            raise EdgeError(f"{path}: not a new-items file from `lmrec export-items` ({exc})") from None
        if "ids" not in data or "items" not in data:
            raise EdgeError(f"{path}: not a new-items file from `lmrec export-items` (no ids / items arrays)")
        tables = {k.removeprefix("table."): v for k, v in data.items() if k.startswith("table.")}
        self.bundle.append_items(list(data["ids"]), tables, data["items"])
        return len(data["ids"])


__all__ = ["Bundle", "EdgeError", "EdgeRecommender", "sha256"]
