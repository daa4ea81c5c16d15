"""python -m lmrec.edge --bundle BUNDLE --events EVENTS.csv --k 10 --output recs.csv

Recommends for every user in the event file from their history there (seen items excluded), with
an exported bundle and nothing but numpy and onnxruntime; writes the CSV `lmrec recommend` writes
(user_id,rank,item_id,score). Events whose item is not in the bundle are skipped and counted.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from lmrec.edge import EdgeError, EdgeRecommender


def _open_text(path: Path):
    return gzip.open(path, "rt", newline="") if path.suffix == ".gz" else path.open(newline="")


def read_events(path: Path, user_col: str, item_col: str, time_col: str | None) -> dict[str, list[tuple]]:
    """user -> [(time, row, item_id)] from a CSV / TSV (gzip allowed), in time order (file order
    among equal times; file order when the file has no time column)."""
    if not path.is_file():
        raise EdgeError(f"{path}: no such events file")
    tab = ".tsv" in path.suffixes or ".tab" in path.suffixes
    users: dict[str, list[tuple]] = defaultdict(list)
    with _open_text(path) as f:
        reader = csv.DictReader(f, delimiter="\t" if tab else ",")
        columns = reader.fieldnames or []
        for col in (user_col, item_col):
            if col not in columns:
                raise EdgeError(f"{path}: no column {col!r} (columns: {', '.join(columns) or 'none'}); name it with "
                                f"--{'user' if col == user_col else 'item'}-col")
        timed = time_col is not None and time_col in columns
        for row, rec in enumerate(reader, start=1):
            t = 0.0
            if timed:
                try:
                    t = float(rec[time_col])
                except (TypeError, ValueError):
                    raise EdgeError(f"{path}: row {row}, column {time_col!r}: expected a number, got "
                                    f"{rec[time_col]!r}") from None
            users[rec[user_col]].append((t, row, rec[item_col]))
    for events in users.values():
        events.sort()
    return users


def _user_order(users) -> list[str]:
    """Numeric ids in numeric order, as `lmrec recommend` writes them."""
    ids = list(users)
    try:
        return sorted(ids, key=int)
    except ValueError:
        return sorted(ids)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lmrec.edge", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", required=True, type=Path, help="directory written by `lmrec export`")
    p.add_argument("--events", required=True, type=Path, help="CSV/TSV (.gz allowed) of events: user, item, time")
    p.add_argument("--output", required=True, type=Path, help="CSV to write: user_id,rank,item_id,score")
    p.add_argument("--k", type=int, default=10, help="recommendations per user (default 10)")
    p.add_argument("--new-items", type=Path, action="append", default=[],
                   help="items added after export (`lmrec export-items`); repeatable")
    p.add_argument("--include-seen", action="store_true", help="allow items the user already has")
    p.add_argument("--user-col", default="user_id", help="user column (default user_id)")
    p.add_argument("--item-col", default="item_id", help="item column (default item_id)")
    p.add_argument("--time-col", default="timestamp", help="time column, if the file has one (default timestamp)")
    args = p.parse_args(argv)
    if args.k < 1:
        p.error("--k must be >= 1")
    try:
        started = time.perf_counter()
        rec = EdgeRecommender(args.bundle)
        for path in args.new_items:
            rec.add_items(path)
        events = read_events(args.events, args.user_col, args.item_col, args.time_col)
        users = _user_order(events)
        bundle, skipped, histories = rec.bundle, [], []
        for u in users:
            h = []
            for _, row, item in events[u]:
                try:
                    h.append(bundle.index(item))
                except EdgeError:
                    skipped.append((row, item))
            histories.append(np.array(h, dtype=np.int64))
        top, scores = rec.recommend_indices(histories, args.k, exclude_seen=not args.include_seen)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.output.with_name(f".{args.output.name}.tmp")
        rows = 0
        with tmp.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["user_id", "rank", "item_id", "score"])
            for u, items, ss in zip(users, top, scores, strict=True):
                for rank, (i, s) in enumerate(zip(items, ss, strict=True), start=1):
                    if i >= 0:
                        w.writerow([u, rank, bundle.item_ids[i], repr(float(s))])
                        rows += 1
        tmp.replace(args.output)
    except EdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if skipped:
        print(f"skipped {len(skipped):,} events whose item is not in the bundle (e.g. row {skipped[0][0]}: "
              f"{skipped[0][1]!r})", file=sys.stderr)
    print(f"wrote {rows:,} rows for {len(users):,} users -> {args.output} ({time.perf_counter() - started:.1f} s)",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
