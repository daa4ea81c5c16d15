"""Benchmark: how much of Beauty's NDCG@10 is the order of same-day events.

Beauty's timestamps are days and same-day events keep the input file's order, which is ASIN
order, so leave-one-out holds out the same-day purchase with the largest ASIN. `asin` trains and
evaluates on the product's data; `random` puts every (user, day) group in a random order (seeded
by the training seed, so its targets differ from seed to seed) and runs the same split, frozen
ID-only config (benchmarks/sasrec.py), budget and seed. Test NDCG@10 is split by whether the
target shares its timestamp with the event before it. docs/benchmarks.md, "Same-day ties on Beauty".

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ties.py asin --seeds 0,1 --jsonl ties.jsonl
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ties.py random --seeds 0,1 --jsonl ties.jsonl
    .venv/bin/python benchmarks/ties.py --table ties.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import append_jsonl, frozen, machine, result_options, table_only  # noqa: E402
from sasrec import CONFIGS  # noqa: E402

from lmrec.data import Interactions, load_dataset  # noqa: E402
from lmrec.data.splits import TEST, TRAIN, VALID, LeaveOneOutConfig, make_split  # noqa: E402
from lmrec.evaluation import EvalConfig, Validator, evaluate  # noqa: E402
from lmrec.models import create_model  # noqa: E402
from lmrec.pipeline import seed_everything  # noqa: E402


def shuffled_ties(data: Interactions, seed: int) -> Interactions:
    """The same events, each (user, timestamp) group in a random order."""
    order = np.lexsort((np.random.default_rng(100 + seed).random(len(data)), data.timestamp, data.user))
    return Interactions(data.user[order], data.item[order], data.timestamp[order], data.n_users, data.n_items)


def measure(order: str, seed: int, minutes: float) -> dict:
    ds = load_dataset("beauty")
    data = ds.interactions if order == "asin" else shuffled_ties(ds.interactions, seed)
    labels = make_split(data, LeaveOneOutConfig())
    seed_everything(seed)
    model_cfg, training = frozen("sasrec", CONFIGS[("beauty", "sasrec")] | {"max_train_minutes": minutes})
    m = create_model("sasrec", model_cfg, training=training, runtime={"progress": False})
    m.attach_items(ds.item_info)
    t0 = time.perf_counter()
    m.fit(data.subset(labels == TRAIN), Validator(data, labels))
    row = {"order": order, "seed": seed, "minutes": minutes, "fit_s": time.perf_counter() - t0,
           "epochs": m.train_state.epoch, "best_epoch": m.train_state.best_epoch}
    for name, stage in (("valid", VALID), ("test", TEST)):
        r = evaluate(m, data, labels, stage, EvalConfig(ks=[10]))
        ndcg = r.per_user["ndcg@10"]
        targets = np.flatnonzero(labels == stage)  # one per user, in user order, as r.users
        tied = data.timestamp[targets] == data.timestamp[targets - 1]
        row[name] = {"ndcg": float(ndcg.mean()), "<=5": r.summary()["by_history"]["<=5"]["ndcg@10"],
                     "tied_share": float(tied.mean()), "tied": float(ndcg[tied].mean()),
                     "other": float(ndcg[~tied].mean())}
    return row


def table(rows: list[dict]) -> str:
    out = ["| tie order | seed | valid NDCG@10 | test NDCG@10 | test <= 5 events | test, tied targets | test, other "
           "targets | epochs (best) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        v, t = r["valid"], r["test"]
        out.append(f"| {r['order']} | {r['seed']} | {v['ndcg']:.4f} | {t['ndcg']:.4f} | {t['<=5']:.4f} | "
                   f"{t['tied']:.4f} | {t['other']:.4f} | {r['epochs']} ({r['best_epoch']}) |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("order", nargs="?", choices=("asin", "random"), help="the order of same-day events")
    ap.add_argument("--seeds", default="0", help="comma-separated training seeds")
    ap.add_argument("--minutes", type=float, default=10.0, help="the fit's time budget")
    result_options(ap)
    args = ap.parse_args()
    if table_only(args, table):
        return
    if args.order is None:
        ap.error("name the order: asin or random")
    rows = []
    for seed in (int(x) for x in args.seeds.split(",")):
        rows.append(measure(args.order, seed, args.minutes))
        print(json.dumps(rows[-1]), flush=True)
        append_jsonl(args.jsonl, rows[-1])
    print(f"\nmachine: {machine()}\n\n{table(rows)}")


if __name__ == "__main__":
    main()
