"""``make run``: the main job end to end on a real dataset, with the settings a user gets by default.

Trains the SASRec Transformer on ML-100K with no config (every setting chosen from the data's
profile, within the default time budget), evaluates it with full ranking, prints the table by
bucket, then shows a few users' last events and their next-item recommendations with titles.
When ML-100K is neither in the data directory nor in the download cache, it is downloaded from
GroupLens (checksummed); without network, one line says what to do.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lmrec.config import RunConfig
from lmrec.data.datasets import DATASETS, cache_dir, data_dir, ensure_available
from lmrec.data.download import DownloadError
from lmrec.evaluation.report import rich_table
from lmrec.pipeline import train_run
from lmrec.runs import Run

MODEL = "sasrec"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("runs/ml-100k-main"))
    parser.add_argument("--data", default="ml-100k")
    parser.add_argument("--users", type=int, default=3, help="how many users' recommendations to show")
    args = parser.parse_args(argv)
    console = Console()
    if args.data in DATASETS:
        try:
            ensure_available(args.data)
        except DownloadError as exc:
            folder = DATASETS[args.data].folder
            message = (f"{args.data} is not under {data_dir() / folder} nor {cache_dir() / folder}, and downloading it "
                       f"failed ({exc}). Copy its files there (or set LMREC_DATA_DIR to a folder holding {folder}) and "
                       "run `make run` again.")
            console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)
            sys.exit(2)
    console.rule(f"lmrec main job: {MODEL} on {args.data}, default settings")
    result = train_run(args.data, MODEL, args.out, RunConfig(), overwrite=True, log=console.print)
    console.print(rich_table(result.summary, 10, title=f"{MODEL} on {args.data}: test (leave-one-out, full ranking)"))

    run = Run.open(result.run_dir)
    rng = np.random.default_rng(0)
    users = rng.choice(run.dataset.n_users, size=min(args.users, run.dataset.n_users), replace=False)
    recs = run.recommend([run.dataset.users.ids[u] for u in users], k=5)
    for u in users:
        uid = run.dataset.users.ids[u]
        history = run.histories(np.array([u]))[0]
        table = Table(title=f"user {uid}: {len(history)} events; last 3 -> next 5 recommended", show_lines=False)
        table.add_column("")
        table.add_column("item")
        table.add_column("title")
        for i in history[-3:]:
            table.add_row("seen", str(run.dataset.items.ids[i]), run.item_titles([i])[0])
        mine = recs.filter(recs["user_id"] == uid)
        idx = run.dataset.items.lookup(mine["item_id"].to_list())
        for rank, (iid, title) in enumerate(zip(mine["item_id"], run.item_titles(idx), strict=True), 1):
            table.add_row(f"#{rank}", str(iid), title)
        console.print(table)
    t = result.timings
    console.print(f"[green]done[/]: run directory {result.run_dir} (report.md, metrics.json, plots/); "
                  f"fit {t['fit_s']:.1f}s, evaluate {t['evaluate_s']:.1f}s, refit {t.get('refit_s', 0):.1f}s; "
                  f"{t['total_s']:.0f}s in all")


if __name__ == "__main__":
    main()
