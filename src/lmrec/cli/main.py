"""``lmrec`` command line. Each command parses options, calls the library and prints a summary."""

from __future__ import annotations

import functools
import json
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lmrec.errors import LmrecError

app = typer.Typer(
    help="lmrec: recommendations from sparse behaviour data.\n\n"
    "Typical flow: `lmrec info --data ml-100k`, `lmrec train --data ml-100k --model sasrec --out runs/x` "
    "(settings chosen from the data; --time-budget MINUTES), `lmrec evaluate --run runs/x`, "
    "`lmrec recommend --run runs/x --output recs.csv`, `lmrec serve --run runs/x`.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(stderr=True)
DataOpt = Annotated[str, typer.Option("--data", help="dataset name (ml-100k, ml-1m, beauty, ml-latest-small, lastfm) "
                                      "or an interactions file (.csv/.tsv/.parquet/.jsonl, optionally .gz)")]
ItemsOpt = Annotated[Path | None, typer.Option("--items", help="item metadata file (id column + text/category columns)")]
RunOpt = Annotated[Path, typer.Option("--run", help="run directory written by `lmrec train`")]
UserCol = Annotated[str | None, typer.Option("--user-col", help="user id column (default: detected)")]
ItemCol = Annotated[str | None, typer.Option("--item-col", help="item id column (default: detected)")]
TimeCol = Annotated[str | None, typer.Option("--time-col", help="timestamp column: unix seconds or ISO date/time")]
RatingCol = Annotated[str | None, typer.Option("--rating-col", help="rating/weight column, if any")]


DEBUG = {"on": False}


@app.callback()
def main(debug: Annotated[bool, typer.Option("--debug", help="show Python tracebacks instead of one-line errors")]
         = False) -> None:
    """lmrec: recommendations from sparse behaviour data."""
    DEBUG["on"] = debug


def friendly_errors(fn):
    """Errors become one red line, not a traceback (``lmrec --debug ...`` shows it): exit code 2
    for errors in what the user gave (files, columns, config, ids), 1 for anything unexpected."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except KeyboardInterrupt:
            console.print("[bold red]interrupted[/]")
            raise typer.Exit(130) from None
        except Exception as exc:
            if DEBUG["on"]:
                raise
            known = isinstance(exc, LmrecError)
            what = str(exc) if known else f"unexpected {type(exc).__name__}: {exc} (run `lmrec --debug ...` for details)"
            console.print(f"[bold red]error:[/] {escape(what)}", soft_wrap=True, highlight=False)
            raise typer.Exit(2 if known else 1) from None

    return wrapper


def _columns(config, user_col, item_col, time_col, rating_col):
    mapping = config.data.columns
    for role, value in (("user", user_col), ("item", item_col), ("timestamp", time_col), ("rating", rating_col)):
        if value is not None:
            setattr(mapping, role, value)
    return config


class Device(StrEnum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


@app.command()
@friendly_errors
def train(
    data: DataOpt,
    model: Annotated[str, typer.Option("--model", help="model name; see `lmrec models`")],
    out: Annotated[Path, typer.Option("--out", help="run directory to create")],
    items: ItemsOpt = None,
    config: Annotated[Path | None, typer.Option("--config", help="run config (.json/.toml/.yaml): "
                                                "data, split, model, training, runtime, evaluation sections")] = None,
    user_col: UserCol = None, item_col: ItemCol = None, time_col: TimeCol = None, rating_col: RatingCol = None,
    text_cols: Annotated[str | None, typer.Option(
        "--text-cols", help="comma-separated item columns to encode for content models (text-knn, sasrec-text); "
        "default: every string column of the items file")] = None,
    item_vectors: Annotated[list[Path] | None, typer.Option(
        "--item-vectors", help="sasrec-text, text-knn: extra per-item vectors (attributes, image, audio) used with "
        "the text (config: item_vector_weight sets their weight), from a .parquet (id column + float-list "
        "column) or .npy (+ NAME.ids.txt, one id per row) file; repeatable")] = None,
    time_budget: Annotated[float | None, typer.Option(
        "--time-budget", min=0.1, metavar="MINUTES", help="wall time for the whole command: data, fit(s), refit "
        "and evaluation (default 24: ML-1M- or Beauty-sized data, with or without item text, stays within 25 "
        "minutes on 2 CPU cores; small data stops sooner by early stopping)")] = None,
    like_threshold: Annotated[float | None, typer.Option(
        "--like-threshold", help="rating >= this is a like, below it a dislike (labels for --model interest; "
        "default for ml-100k and ml-latest-small: 4)")] = None,
    social: Annotated[Path | None, typer.Option(
        "--social", help="user -> user relations (friends, follows: CSV/TSV/.dat with user and friend columns, e.g. "
        "Last.fm's user_friends.dat): users' neighbourhoods are blended with the model, weighted per history "
        "length by validation; unknown users in the file are reported and skipped")] = None,
    social_user_col: Annotated[str | None, typer.Option("--social-user-col", help="user column of --social")] = None,
    social_friend_col: Annotated[str | None, typer.Option("--social-friend-col",
                                                          help="friend column of --social")] = None,
    forget_db: Annotated[str | None, typer.Option(
        "--forget-db", help="an event store (SQLite file or postgresql:// URL) whose forgotten users (DELETE /users, "
        "`lmrec forget`) are left out of the data entirely")] = None,
    dp_epsilon: Annotated[float | None, typer.Option(
        "--dp-epsilon", min=0.01, help="train with user-level differential privacy at this epsilon for the whole run "
        "(transitions: a Gaussian release of its counts, best on ML-1M; DP-SGD: sasrec, dnn, sasrec-text with fusion "
        "text or id); the popularity fallback gets DP counts; config: privacy.dp (docs/privacy.md)")
    ] = None,
    nproc: Annotated[int, typer.Option(
        "--nproc", min=1, help="processes training together (data parallel, PyTorch DDP: gloo on CPUs, NCCL on GPUs): "
        "launches `torchrun --nproc-per-node N`; sequence models only; several machines: run torchrun yourself "
        "(docs/distributed.md)")] = 1,
    device: Annotated[Device | None, typer.Option(
        "--device", help="where the training steps run (config: "
        "runtime.device; default auto: a CUDA GPU when torch sees one and the model (sasrec, sasrec-text, dnn) and "
        "everything in the fit can use it, with bf16 autocast and TF32; validation, evaluation and serving run on "
        "the CPU)")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace an existing run directory")] = False,
) -> None:
    """Train a model and write a self-contained run directory.

    Settings you leave unset are chosen from the data's profile (users, items, history lengths,
    how many events a typical item has, item text): `train` prints the profile and the values it
    chose, and run.json records them; anything in --config wins. The run's split (leave-one-out
    by default) gives validation for early stopping and a test evaluation; then the served model
    is trained again on every event, following the evaluated run's learning-rate path (config
    training.refit), so `recommend` predicts each user's next event after the last one in the data.
    """
    from lmrec.config import load_config
    from lmrec.evaluation.report import rich_table
    from lmrec.models.registry import get_model_class
    from lmrec.pipeline import train_run

    cfg = _columns(load_config(config), user_col, item_col, time_col, rating_col)
    if nproc > 1 and "RANK" not in os.environ:  # the usual mistakes fail here, once, not in every process
        get_model_class(model)
        raise typer.Exit(_torchrun(nproc))
    if text_cols is not None:
        cfg.model["text_columns"] = [c.strip() for c in text_cols.split(",") if c.strip()]
    if item_vectors:
        cfg.data.item_vectors = [str(p) for p in item_vectors]
    if time_budget is not None:
        cfg.training.time_budget = time_budget
    if device is not None:
        cfg.runtime.device = device.value
    if like_threshold is not None:
        cfg.data.like_threshold = like_threshold
    if dp_epsilon is not None:
        from lmrec.privacy.dp import DPConfig

        dp = cfg.privacy.dp.model_dump() if cfg.privacy.dp else {}
        cfg.privacy.dp = DPConfig.model_validate(dp | {"epsilon": dp_epsilon})
    forgotten = None
    if forget_db is not None:
        from lmrec.serving.store import open_store

        store = open_store(forget_db, must_exist=True)
        forgotten = set(store.tombstones())
        store.close()
    result = train_run(data, model, out, cfg, items=items, social=social,
                       social_columns=(social_user_col, social_friend_col), forget=forgotten, overwrite=overwrite,
                       log=console.print)
    if os.environ.get("RANK", "0") != "0":  # torchrun: rank 0 reports
        return
    k = 10 if 10 in cfg.evaluation.ks else cfg.evaluation.ks[0]
    console.print(rich_table(result.summary, k, title=f"{model} on {data}: test, full ranking"))
    t = result.timings
    console.print(f"[green]done[/] run -> {result.run_dir}  (fit {t['fit_s']:.1f}s, evaluate {t['evaluate_s']:.1f}s"
                  + (f", refit {t['refit_s']:.1f}s" if "refit_s" in t else "")
                  + f"; {t['total_s'] / 60:.1f} of {result.budget_s / 60:g} budgeted minutes)")


def _torchrun(nproc: int) -> int:
    """This train command again under torchrun with ``nproc`` processes; its exit status."""
    import subprocess

    at = sys.argv.index("train")
    args, skip = [], False
    for a in sys.argv[at + 1 :]:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            args.append(a)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "lmrec.cli.main", *sys.argv[1:at], "train", *args]
    return subprocess.run(cmd).returncode


@app.command()
@friendly_errors
def evaluate(
    run: RunOpt,
    k: Annotated[int, typer.Option("--k", help="cut-off shown in the table (all configured cut-offs are saved)")] = 10,
    include_seen: Annotated[bool, typer.Option("--include-seen", help="allow items from the user's history")] = False,
) -> None:
    """Evaluate a run on its test split (full ranking) and print the table by bucket.

    Writes metrics.json, report.md and plots/ into the run directory.
    """
    from lmrec.evaluation.report import rich_table
    from lmrec.pipeline import evaluate_run
    from lmrec.runs import Run

    r = Run.open(run)
    summary = evaluate_run(r, k=k, include_seen=include_seen)
    console.print(rich_table(summary, k, title=f"{r.model_name} on {r.dataset.name}: test, full ranking"))
    console.print(f"[green]wrote[/] {r.path / 'metrics.json'} and {r.path / 'report.md'}")


def _read_user_ids(path: Path) -> list:
    from lmrec.data.readers import read_table

    if not path.exists():
        raise LmrecError(f"{path}: users file not found")
    first = path.read_text().splitlines()[:1]
    has_header = bool(first) and first[0].strip().split(",")[0] in ("user_id", "user", "userId")
    df = read_table(path, separator=",", has_header=has_header, new_columns=None if has_header else ["user_id"])
    col = df.columns[1]
    return [v.strip() for v in df[col].to_list() if v is not None and v.strip()]


@app.command()
@friendly_errors
def recommend(
    run: RunOpt,
    output: Annotated[Path, typer.Option("--output", help="CSV to write: user_id,rank,item_id,score")],
    users: Annotated[str, typer.Option("--users", help="'all' or a file of user ids (one per line, or a CSV "
                                       "with a user_id column)")] = "all",
    k: Annotated[int, typer.Option("--k", min=1, max=10_000, help="recommendations per user")] = 10,
    include_seen: Annotated[bool, typer.Option("--include-seen", help="allow items the user already has")] = False,
) -> None:
    """Top-k recommendations per user from the run's served model, with the original ids.

    Each user's whole history in the training data is the input; seen items are excluded.
    """
    from lmrec.runs import Run

    r = Run.open(run)
    ids = None if users == "all" else _read_user_ids(Path(users))
    df = r.recommend(ids, k, exclude_seen=not include_seen)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    df.write_csv(tmp)
    tmp.replace(output)
    console.print(f"[green]wrote[/] {df.height:,} rows for {df['user_id'].n_unique():,} users -> {output}")


@app.command()
@friendly_errors
def predict(
    run: RunOpt,
    user: Annotated[str | None, typer.Option("--user", help="original user id (with --item)")] = None,
    item: Annotated[list[str] | None, typer.Option("--item", help="original item id; repeatable")] = None,
    pairs: Annotated[Path | None, typer.Option("--pairs", help="CSV of pairs to predict in bulk: columns "
                                               "user_id,item_id (with --output)")] = None,
    output: Annotated[Path | None, typer.Option("--output", help="CSV to write for --pairs: user_id,item_id,"
                                                "probability; rejected rows go to OUTPUT.rejected.csv")] = None,
) -> None:
    """P(like) of items for a user, from a run trained with `--model interest`.

    The user's whole history in the run (items and their like / dislike labels) is the input.
    One user: `--user U --item I [--item ...]` prints a table. In bulk: `--pairs pairs.csv
    --output preds.csv`; every input row is answered in the output or rejected (unknown user or
    item) in OUTPUT.rejected.csv with its row number.
    """
    import numpy as np
    import polars as pl

    from lmrec.data.readers import ROW, read_table
    from lmrec.errors import DataValidationError
    from lmrec.runs import Run

    if (pairs is None) == (user is None):
        raise LmrecError("give either --user with --item, or --pairs with --output")
    r = Run.open(run)
    if user is not None:
        if not item:
            raise LmrecError("--user needs at least one --item")
        probs, errors = r.predict_interest([user] * len(item), list(item))
        table = Table(title=f"P(like) for user {user}")
        for col in ("item_id", "title", "probability"):
            table.add_column(col, justify="right" if col == "probability" else "left")
        for i, p, err in zip(item, probs, errors, strict=True):
            title = r.item_titles([r.dataset.items.index(i)])[0] if err is None else ""
            table.add_row(i, title, err or f"{p:.4f}")
        Console().print(table)
        if all(errors):
            raise typer.Exit(2)
        return
    if output is None:
        raise LmrecError("--pairs needs --output")
    df = read_table(pairs)
    for col in ("user_id", "item_id"):
        if col not in df.columns:
            raise DataValidationError(f"missing column; expected user_id,item_id, the file has "
                                      f"{[c for c in df.columns if c != ROW]}", path=pairs, column=col)
    probs, errors = r.predict_interest(df["user_id"].to_list(), df["item_id"].to_list())
    ok = np.array([e is None for e in errors])
    answered = df.select("user_id", "item_id").filter(pl.Series(ok)).with_columns(probability=pl.Series(probs[ok]))
    rejected = df.filter(pl.Series(~ok)).select(pl.col(ROW).alias("row"), "user_id", "item_id") \
        .with_columns(reason=pl.Series([e for e in errors if e is not None], dtype=pl.String))
    rejected_path = output.with_name(output.name.removesuffix(".csv") + ".rejected.csv")
    output.parent.mkdir(parents=True, exist_ok=True)
    for frame, path in ((answered, output), (rejected, rejected_path)):
        if path is rejected_path and frame.height == 0:
            path.unlink(missing_ok=True)  # no stale rejections from an earlier call
            continue
        tmp = path.with_name(f".{path.name}.tmp")
        frame.write_csv(tmp)
        tmp.replace(path)
    console.print(f"[green]wrote[/] {answered.height:,} predictions -> {output}"
                  + (f"; [yellow]{rejected.height:,} rows rejected[/] -> {rejected_path} (e.g. row "
                     f"{rejected['row'][0]}: {rejected['reason'][0]})" if rejected.height else ""))


@app.command()
@friendly_errors
def similar(
    run: RunOpt,
    item: Annotated[str, typer.Option("--item", help="original item id")],
    k: Annotated[int, typer.Option("--k", min=1, max=10_000)] = 10,
) -> None:
    """Items most similar to one item, according to the run's model."""
    from lmrec.runs import Run

    r = Run.open(run)
    df = r.similar(item, k)
    table = Table(title=f"similar to {item}: {r.item_titles([r.dataset.items.index(item)])[0]}")
    for col in df.columns:
        table.add_column(col)
    for row in df.iter_rows():
        table.add_row(*(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row))
    Console().print(table)


@app.command()
@friendly_errors
def onboarding(
    run: RunOpt,
    k: Annotated[int, typer.Option("--k", min=1, max=100, help="slate size")] = 20,
) -> None:
    """A first slate for a new user with no history (the service's GET /onboarding).

    Popular items, either spread over the catalogue's main clusters (k-means over the model's item
    vectors, or over an SVD of the events for models without them) or placed one by one for what
    training users' first clicks tell the model, so that a newcomer's first clicks say more than
    clicks on the top-k of one genre would. Which kind, how many popular items and how many
    clusters is what `lmrec train` chose on the run's validation users (see docs/new-users.md).
    """
    from lmrec.runs import Run

    r = Run.open(run)
    df = r.onboarding(k)
    setting = r.onboarding_setting()
    how = "the default setting (this run made no choice: a DP run, the interest model or an older run)" \
        if setting is None else f"chosen by train: {setting.describe(k)}"
    table = Table(title=f"first slate for a new user ({run})")
    for col in df.columns:
        table.add_column(col)
    for row in df.iter_rows():
        table.add_row(*map(str, row))
    console.print(table)
    console.print(f"slate: {how}")


@app.command()
@friendly_errors
def export(
    run: RunOpt,
    out: Annotated[Path, typer.Option("--out", help="bundle directory to write (replaced whole if it is one)")],
    format: Annotated[str, typer.Option("--format", help="bundle format (onnx)")] = "onnx",
    int8: Annotated[bool, typer.Option("--int8", help="int8 item tables (per-row scales) and int8 weights in the "
                                       "graph's matrix products: a smaller bundle, scores within quantisation error")]
    = False,
    opset: Annotated[int, typer.Option("--opset", min=17, max=23, help="ONNX operator set")] = 18,
) -> None:
    """The run's served model as an edge bundle that runs with numpy and onnxruntime only.

    The bundle holds an ONNX graph of the user encoder (dynamic batch and history length), the
    item vectors, the item ids and a manifest with checksums; no user ids or histories. Export
    checks itself: the bundle's top-10 against the model's for up to 1,000 users. Use it with
    `python -m lmrec.edge --bundle OUT --events EVENTS.csv --output recs.csv` or the
    `lmrec.edge.EdgeRecommender` class (docs/edge.md).
    """
    from lmrec.export.bundle import export_bundle
    from lmrec.runs import Run

    if format != "onnx":
        raise LmrecError(f"--format {format!r}: the only bundle format is 'onnx'")
    m = export_bundle(Run.open(run), out, int8=int8, opset=opset, log=lambda msg: console.print(msg))
    par = m["parity"]
    console.print(f"[green]wrote[/] {out} ({m['size_bytes'] / 1e6:.1f} MB, {m['n_items']:,} items, "
                  f"{'int8' if int8 else 'fp32'}) in {m['seconds']:.1f} s; top-{par['k']} equal to the model's for "
                  f"{par['top_k_equal']:.1%} of {par['users']:,} users (largest score difference "
                  f"{par['max_abs_score_diff']:.2g})")


@app.command()
@friendly_errors
def forget(
    db: Annotated[str, typer.Option("--db", help="the service's event store: SQLite file (RUN_DIR/events.db by "
                                    "default) or postgresql:// URL")],
    user: Annotated[list[str], typer.Option("--user", help="user id to forget; repeatable")],
    run: Annotated[Path | None, typer.Option("--run", help="the run the store serves: with privacy.pseudonymise, "
                                             "the raw ids are mapped with its key (LMREC_ID_KEY)")] = None,
) -> None:
    """The right to be forgotten, offline: delete users' stored events and relations, leave tombstones.

    A service started on the store hides the users' events in its run too (their next request is
    a cold start), and `lmrec train ... --forget-db DB` leaves them out of the next model. The
    weights of models already trained still reflect them (docs/privacy.md). Same as
    DELETE /users/{user_id} on a running service.
    """
    import time

    from lmrec.serving.store import open_store

    ids, opened = list(user), None
    if run is not None:
        from lmrec.privacy import Pseudonymiser
        from lmrec.runs import Run

        opened = Run.open(run)
        pseudonyms = Pseudonymiser.of(opened.config.privacy)
        ids = [pseudonyms(u) for u in ids] if pseudonyms else ids
    store = open_store(db, opened, must_exist=True)
    try:
        for u, stored in zip(user, ids, strict=True):
            n = store.forget(stored, int(time.time()))
            console.print(f"forgot {u!r}: {n:,} stored events deleted, tombstone written")
    finally:
        store.close()


@app.command()
@friendly_errors
def rekey(
    run: RunOpt,
    new_key_file: Annotated[Path, typer.Option("--new-key-file", help="file holding the new 32-byte data key (hex "
                                               "or base64)")],
    db: Annotated[Path | None, typer.Option("--db", help="the run's encrypted event store, re-keyed too (default: "
                                            "RUN/events.db when it exists)")] = None,
) -> None:
    """Rotate the data key of an encrypted run (privacy.encrypt).

    The old key comes from $LMREC_DATA_KEY or the run's privacy.data_key_file. Every personal file
    is decrypted and checked first, then replaced atomically under the new key: a wrong old key
    changes nothing. Afterwards give the new key to everything that opens the run.
    """

    from lmrec.privacy import crypto

    meta = json.loads((run / "run.json").read_text()) if (run / "run.json").exists() else None
    if meta is None:
        raise LmrecError(f"{run} is not a run directory (no run.json)")
    privacy = meta["config"].get("privacy", {})
    if not privacy.get("encrypt"):
        raise LmrecError(f"run {run} is not encrypted (privacy.encrypt is off)")
    old = crypto.load_data_key(privacy.get("data_key_file"))
    new = crypto.load_data_key(str(new_key_file))
    from lmrec.serving.store import EventStore

    db = db or (run / "events.db" if (run / "events.db").exists() else None)
    store = EventStore(db, old) if db is not None else None  # opened (and checked) before anything changes
    done = crypto.rekey(run, old, new)
    if store is not None:
        store.rekey(new)
        store.close()
        done.append(str(db))
    console.print(f"[green]re-encrypted[/] {', '.join(done)} under the new key")


@app.command()
@friendly_errors
def compress(
    run: RunOpt,
    method: Annotated[str, typer.Option("--method", help="int8 | bf16: quantise the stored arrays; prune: zero the "
                                        "smallest weights of the network's matrices")],
    out: Annotated[Path, typer.Option("--out", help="new run directory to write")],
    sparsity: Annotated[float, typer.Option("--sparsity", min=0.0, max=0.99, help="prune: share of each weight "
                                            "matrix set to zero")] = 0.5,
    structured: Annotated[bool, typer.Option("--structured", help="prune: remove whole hidden units of the "
                                             "feed-forward layers (Transformer FFN, DNN MLP) and whole attention heads "
                                             "(rounded down, one kept) instead of single weights")]
    = False,
    fine_tune_epochs: Annotated[int, typer.Option("--fine-tune-epochs", min=0, help="prune: epochs of fine-tuning "
                                                  "with the pruned weights held at zero (validation keeps the best)")]
    = 0,
    storage: Annotated[str | None, typer.Option("--storage", help="prune: also store the arrays as int8 or bf16")]
    = None,
) -> None:
    """A compressed copy of a run, as a normal run directory (recommend, evaluate, serve, export).

    Both models of the run (the served one and the evaluated one) are compressed the same way, and
    the copy is evaluated on the test split at once, so its report sits next to the original's.
    int8 stores every large matrix as int8 rows with a scale per row (about 4x smaller); bf16 as
    bfloat16 (2x). For int8 compute on a device, export the result with `lmrec export --int8`.
    """
    from lmrec.evaluation.report import rich_table
    from lmrec.export.compress import compress_run
    from lmrec.pipeline import evaluate_run
    from lmrec.runs import Run

    record = compress_run(Run.open(run), out, method, sparsity=sparsity, structured=structured,
                          fine_tune_epochs=fine_tune_epochs,
                          storage=storage, log=lambda msg: console.print(msg))
    served = record["model"]
    console.print(f"[green]wrote[/] {out}: served model {served['bytes_before'] / 1e6:.2f} MB -> "
                  f"{served['bytes_after'] / 1e6:.2f} MB"
                  + (f", {served['sparsity']:.1%} of its weight matrices zero" if "sparsity" in served else ""))
    r = Run.open(out)
    summary = evaluate_run(r)
    console.print(rich_table(summary, 10, title=f"{r.model_name} on {r.dataset.name} ({method}): test, full ranking"))


@app.command("export-items")
@friendly_errors
def export_items(
    run: RunOpt,
    items: Annotated[Path, typer.Option("--items", help="items file of new items (same columns as the run's)")],
    out: Annotated[Path, typer.Option("--out", help=".npz to write for `EdgeRecommender.add_items` / "
                                      "`python -m lmrec.edge --new-items`")],
) -> None:
    """Vectors of items added after an export, for a bundle to append (content models).

    The run's model represents each new item by its content (text through the frozen encoder),
    exactly as the service does for POST /items, so a device learns about new products without a
    new model or bundle.
    """
    from lmrec.export.bundle import export_new_items
    from lmrec.runs import Run

    n = export_new_items(Run.open(run), items, out)
    console.print(f"[green]wrote[/] {n:,} new items -> {out}")


@app.command()
@friendly_errors
def explain(
    run: RunOpt,
    user: Annotated[str, typer.Option("--user", help="original user id")],
    item: Annotated[list[str] | None, typer.Option("--item", help="explain this item (repeatable) instead of the "
                                                   "user's top-k; shows every contribution")] = None,
    k: Annotated[int, typer.Option("--k", min=1, max=1000, help="recommendations to explain")] = 10,
    top: Annotated[int, typer.Option("--top", min=1, help="contributions shown per item")] = 3,
) -> None:
    """Why items are recommended to a user: the history events that drove each one.

    Every history event's contribution is how much the item's score drops when that event is
    removed (occlusion, for every model family; the last 50 events are tried), with how many
    training users have both items and, for content models, the title words they share. Each
    item gets a one-line reason. `--item I` explains any item, recommended or not, in detail.
    """
    from lmrec.runs import Run

    r = Run.open(run)
    rows = r.explain(user, list(item) if item else None, k)
    if item:
        top = max(top, 10)
    table = Table(title=f"why user {user} gets these items", show_lines=True)
    for col in ("#", "item", "reason", "driven by (score drop; users with both)"):
        table.add_column(col)
    for j, e in enumerate(rows, 1):
        drivers = "\n".join(f"{c['title'] or c['item_id']} ({c['weight']:+.3f}; {c['co_occurrence']})"
                             + (f" [{', '.join(c['shared_words'])}]" if c["shared_words"] else "")
                             for c in e["contributions"][:top])
        table.add_row(str(j), escape(f"{e['title'] or e['item_id']}"), escape(e["reason"]), escape(drivers))
    Console().print(table)


@app.command()
@friendly_errors
def interests(
    run: RunOpt,
    user: Annotated[str | None, typer.Option("--user", help="original user id: show this user's interests")] = None,
    top: Annotated[int, typer.Option("--top", min=1, help="atoms to list (without --user)")] = 20,
    n_items: Annotated[int, typer.Option("--items", min=1, help="items shown per atom")] = 5,
    plot: Annotated[Path | None, typer.Option("--plot", help="with --user: also draw the user on the item map "
                                              "(history, top-10, their atoms named by top titles) into this PNG")] = None,
) -> None:
    """Sparse interest codes of a run (vector models: sasrec, sasrec-text, dnn).

    Every user's state is a combination of a few of K learned interest atoms, each described by
    the items it raises most (config section [interests]; the run report lists how much of the
    model's accuracy recommendations from the codes alone keep). Without --user: the most used
    atoms and the share of user states each is active in. With --user U: the atoms of U's code,
    from their whole history, largest weight first, with each one's share of the code.
    """
    from lmrec.runs import Run

    r = Run.open(run)
    if plot is not None and user is None:
        raise LmrecError("--plot draws one user: give --user")
    rows = r.user_interests(user) if user is not None else r.atoms(top)
    title = f"interests of user {user}" if user is not None else f"most used interest atoms of {r.path}"
    table = Table(title=title)
    cols = ("atom", "weight", "share", "top items") if user is not None else ("atom", "users", "top items")
    for col in cols:
        table.add_column(col, justify="left" if col == "top items" else "right")
    for a in rows:
        names = "; ".join(t or str(i) for t, i in zip(a["titles"][:n_items], a["item_ids"][:n_items], strict=True))
        values = (f"{a['weight']:.3f}", f"{a['share']:.0%}") if user is not None else (f"{a['usage']:.0%}",)
        table.add_row(str(a["atom"]), *values, names)
    console.print(table)
    if plot is not None:
        from lmrec.explain.visuals import user_map

        if not user_map(r, user, plot):
            raise LmrecError(f"model {r.model_name!r} has no item vectors to draw a map from")
        console.print(f"[green]wrote[/] {plot}")


@app.command()
@friendly_errors
def info(
    data: DataOpt,
    items: ItemsOpt = None,
    user_col: UserCol = None, item_col: ItemCol = None, time_col: TimeCol = None, rating_col: RatingCol = None,
) -> None:
    """Users, items, events, density and the history-length distribution of a dataset."""
    from lmrec.config import RunConfig
    from lmrec.data import load_dataset

    cfg = _columns(RunConfig(), user_col, item_col, time_col, rating_col)
    ds = load_dataset(data, items=items, columns=cfg.data.columns)
    s = ds.describe()
    table = Table(title=f"{ds.name}")
    table.add_column("statistic")
    table.add_column("value", justify="right")
    for key in ("users", "items", "events"):
        table.add_row(key, f"{s[key]:,}")
    table.add_row("density", f"{s['density']:.4%}")
    table.add_row("items without events", f"{s['items_without_events']:,}")
    for key, v in s["history_length"].items():
        table.add_row(f"history length {key}", f"{v:,.1f}")
    for key, v in s["users_by_history"].items():
        table.add_row(f"users with {key} events", f"{v:,} ({v / max(1, s['users']):.1%})")
    table.add_row("events at the time of the user's previous one", f"{s['tied_events']:,} "
                  f"({s['tied_events'] / max(1, s['events']):.1%})")
    table.add_row("users whose last event ties with the one before", f"{s['tied_last_events']:,} "
                  f"({s['tied_last_events'] / max(1, s['users_with_two_or_more_events']):.1%})")
    if ds.item_info is not None:
        table.add_row("item metadata columns", ", ".join(ds.item_info.columns[1:]))
    console = Console()
    console.print(table)
    if s["tied_last_events"]:
        console.print("Events with the same timestamp keep the order of the input file, and leave-one-out holds "
                      "out the last of them: a model can learn that order (docs/benchmarks.md, \"Same-day ties on "
                      "Beauty\").")


@app.command()
@friendly_errors
def augment(
    data: DataOpt,
    method: Annotated[str, typer.Option("--method", help="gan (the only method that writes data: contrastive and "
                                        "prior act during training, set them in the config's augmentation section)")],
    users: Annotated[int, typer.Option("--users", help="number of virtual users to write")],
    out: Annotated[Path, typer.Option("--out", help="event file to write (.parquet or .csv): user_id, item_id, "
                                      "timestamp, with user ids virtual-000001...")],
    minutes: Annotated[float, typer.Option("--minutes", min=0.05, help="time for training the generator")] = 5.0,
    seed: Annotated[int, typer.Option("--seed", help="random seed")] = 0,
    config: Annotated[Path | None, typer.Option("--config", help="run config: its data and split sections say "
                                                "which events are training events (default: leave-one-out)")] = None,
    user_col: UserCol = None, item_col: ItemCol = None, time_col: TimeCol = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace an existing output file")] = False,
) -> None:
    """Write virtual users learnt by a GAN from the training events of a dataset, and report how
    real they look: a fresh discriminator's AUC (0.5: indistinguishable from held-out real users),
    KS distances of history length and item popularity, item coverage, and each virtual user's
    highest Jaccard overlap with a real user (copies above 0.8 are dropped).

    Only the training part of the split is read (validation and test events never are), so the
    file can be mixed into `train` (config augmentation.gan.file) without leaking what is evaluated.
    """
    from lmrec.augment.config import GanConfig
    from lmrec.augment.gan import virtual_users
    from lmrec.augment.io import check_output, write_virtual_users
    from lmrec.config import load_config
    from lmrec.data import load_dataset
    from lmrec.data.splits import TRAIN, make_split

    if method != "gan":
        known = "gan" if method not in ("contrastive", "prior") else "gan (contrastive and prior act during training)"
        raise LmrecError(f"--method {method!r}: lmrec augment writes virtual users with: {known}")
    if users <= 0:
        raise LmrecError(f"--users must be a positive number of virtual users, got {users}")
    check_output(out, overwrite)
    cfg = _columns(load_config(config), user_col, item_col, time_col, None)
    ds = load_dataset(data, columns=cfg.data.columns, processing=cfg.data.processing)
    labels = make_split(ds.interactions, cfg.split)
    train = ds.interactions.subset(labels == TRAIN)
    console.print(f"training events of {ds.name}: {len(train):,} of {len(ds.interactions):,}; training the generator "
                  f"for up to {minutes:g} minutes")
    virtual, report = virtual_users(train.sequences(), train.n_items, train.item_counts() > 0, GanConfig(users=users),
                                    budget_s=minutes * 60, seed=seed)
    write_virtual_users(virtual, ds.items, int(train.timestamp.min()), out)
    table = Table(title=f"{len(virtual):,} virtual users -> {out}")
    table.add_column("quality")
    table.add_column("value", justify="right")
    for key, value in report.items():
        table.add_row(key, f"{value:,}" if isinstance(value, int) else str(value))
    Console().print(table)
    console.print("[dim]fresh_discriminator_auc: 0.5 = indistinguishable from held-out real users; *_ks: 0 = same "
                  "distribution; max_jaccard: highest item overlap with any real user (copies > 0.8 dropped)[/]")


@app.command()
@friendly_errors
def download(
    name: Annotated[str, typer.Argument(help="ml-100k or ml-1m")],
    root: Annotated[Path | None, typer.Option("--root", help="data directory (default: the user cache dir)")] = None,
) -> None:
    """Download a MovieLens dataset from GroupLens and verify its checksum (needs network)."""
    from lmrec.data.datasets import DATASETS, fetch

    if name not in DATASETS:
        raise LmrecError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    target = fetch(name, root=root)
    console.print(f"[green]downloaded[/] {name} -> {target}")


@app.command()
@friendly_errors
def serve(
    run: RunOpt,
    db: Annotated[str | None, typer.Option("--db", help="event store: a SQLite file (default: RUN_DIR/events.db), or "
                                           "postgresql://USER:PASSWORD@HOST/DB shared by replicas on several machines "
                                           "(schema created on first use)")] = None,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535)] = 8000,
    api_key: Annotated[str | None, typer.Option("--api-key", envvar="LMREC_API_KEY",
                                                help="require this X-API-Key on write and admin endpoints")] = None,
    keys: Annotated[Path | None, typer.Option("--keys", help="API keys with scopes (read / write / admin) and "
                                              "per-key rate limits, from a TOML or JSON file (docs/privacy.md)")]
    = None,
    ssl_keyfile: Annotated[Path | None, typer.Option("--ssl-keyfile", help="TLS private key (PEM): serve HTTPS")]
    = None,
    ssl_certfile: Annotated[Path | None, typer.Option("--ssl-certfile", help="TLS certificate chain (PEM)")] = None,
    fallback: Annotated[str, typer.Option("--fallback", help="unknown users: popularity or empty")] = "popularity",
    retrieval: Annotated[str, typer.Option("--retrieval", help="exact, faiss (HNSW index), or auto: faiss for "
                                           "sequence models with over 50,000 items")] = "auto",
    threads: Annotated[int, typer.Option("--threads", min=1, help="torch threads per request; 1 lets concurrent "
                                         "requests use the cores in parallel instead of fighting over them")] = 1,
    workers: Annotated[int, typer.Option("--workers", min=1, help="worker processes (one per core is a good "
                                         "start); they share the event store, so an event posted to one is in "
                                         "every worker's next answer")] = 1,
) -> None:
    """Serve a run over HTTP: /recommend, /events, /similar, /items, /health, /metrics (docs at /docs).

    Posted events are stored durably before they are acknowledged and change that user's next
    recommendation immediately.
    """
    try:
        import uvicorn

        from lmrec.serving.app import SETTINGS_ENV, build_app
    except ImportError as exc:
        raise LmrecError(f"serving needs its extra: pip install 'lmrec[serve]' ({exc})") from None
    from lmrec.runs import Run
    from lmrec.serving.auth import KeyRing

    if keys is not None and api_key is not None:
        raise LmrecError("give either --api-key or --keys, not both")
    if keys is not None:
        KeyRing.from_file(keys)  # a bad file fails here, before the run loads
    if (ssl_keyfile is None) != (ssl_certfile is None):
        raise LmrecError("HTTPS needs both --ssl-keyfile and --ssl-certfile")
    for path in (ssl_keyfile, ssl_certfile):
        if path is not None and not path.is_file():
            raise LmrecError(f"{path}: no such file")
    settings = {"run": str(run), "db": str(db or Path(run) / "events.db"), "fallback": fallback, "retrieval": retrieval,
                "threads": threads, "api_key": api_key, "keys": str(keys) if keys else None}
    tls = {"ssl_keyfile": str(ssl_keyfile) if ssl_keyfile else None,
           "ssl_certfile": str(ssl_certfile) if ssl_certfile else None}
    scheme = "https" if ssl_certfile else "http"
    if workers > 1:  # each worker process builds its own state from the settings (uvicorn's app factory)
        Run.open(run)  # a bad run fails here, once, not in every worker
        os.environ[SETTINGS_ENV] = json.dumps(settings)
        console.print(f"serving {run} with {workers} workers sharing {settings['db']} on {scheme}://{host}:{port}")
        from lmrec.serving.nodelay import NoDelayHTTPProtocol

        uvicorn.run("lmrec.serving.app:from_environment", factory=True, workers=workers, host=host, port=port,
                    log_level="warning", http=NoDelayHTTPProtocol, **tls)
        return
    app = build_app(settings)
    state = app.state.service
    console.print(f"serving {state.run.model_name} ({len(state.catalogue.items):,} items, {state.n_users:,} users, "
                  f"{state.events_replayed:,} stored events replayed) on {scheme}://{host}:{port}")
    uvicorn.run(app, host=host, port=port, log_level="warning", **tls)


@app.command()
def models() -> None:
    """List the available models."""
    from lmrec.models.registry import ALIASES, get_model_class, model_names

    aliases = {target: alias for alias, target in ALIASES.items()}
    for name in model_names():
        doc = (get_model_class(name).__doc__ or "").strip().splitlines()[0]
        Console().print(f"[bold]{name}[/]" + (f" (or {aliases[name]})" if name in aliases else "") + f": {doc}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
