"""Benchmark: what compression and the edge bundle cost and save, on a trained run.

Rows: the run as trained (fp32), `lmrec compress` with bf16, int8, magnitude pruning at 50% / 80%
and structured pruning (half the feed-forward hidden units), without and with a short fine-tune
(the evaluated model fine-tuned on the training part, the epoch chosen on validation); then edge
bundles (`lmrec export`, fp32 and --int8) run by lmrec.edge (onnxruntime). NDCG@10 is the test
split (leave-one-out, full ranking, seen excluded) of each variant's evaluated model; sizes are
the served model's files; latency is one user's recommendation (whole history in, top-10 out)
over 300 users, and top-10 for every user. Parity: the served bundle's top-10 against the served
torch model's, every user.

    .venv/bin/python benchmarks/compression.py RUN_DIR [--work DIR] [--fine-tune-epochs 3] [--jsonl F]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import append_jsonl, machine, result_options, table_only  # noqa: E402

from lmrec.data.splits import TEST, eval_set  # noqa: E402
from lmrec.edge import EdgeRecommender  # noqa: E402
from lmrec.evaluation.metrics import ndcg  # noqa: E402
from lmrec.export.bundle import export_bundle  # noqa: E402
from lmrec.export.compress import compress_run, item_table_bytes  # noqa: E402
from lmrec.pipeline import evaluate_run  # noqa: E402
from lmrec.runs import Run  # noqa: E402

LATENCY_USERS = 300
BUCKETS = {"<=5": (0, 5), "6-20": (6, 20), ">20": (21, 10**9)}


def _mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def _latency(recommend_one, histories: list[np.ndarray]) -> tuple[float, float]:
    recommend_one(histories[0])  # warm-up
    times = []
    for h in histories:
        t0 = time.perf_counter()
        recommend_one(h)
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def torch_row(label: str, run: Run) -> dict:
    summary = evaluate_run(run, progress=False)
    model = run.load_model()
    everyone = run.histories(np.arange(run.dataset.interactions.n_users))
    rng = np.random.default_rng(0)
    sample = rng.choice(len(everyone), min(LATENCY_USERS, len(everyone)), replace=False)
    from lmrec.data.sequences import Sequences

    p50, p99 = _latency(lambda h: model.recommend(Sequences.from_lists([h]), 10), [everyone[u] for u in sample])
    t0 = time.perf_counter()
    model.recommend(everyone, 10)
    all_s = time.perf_counter() - t0
    return {"label": label, "ndcg": summary["overall"]["ndcg@10"],
            "by_history": {b: summary["by_history"][b].get("ndcg@10") for b in BUCKETS},
            "mb": _mb(run.path / "model"), "table_mb": item_table_bytes(run.path / "model") / 1e6,
            "p50_ms": p50, "p99_ms": p99, "all_s": all_s, "compression": run.meta.get("compression")}


def edge_ndcg(bundle: Path, run: Run) -> tuple[float, dict]:
    es = eval_set(run.dataset.interactions, run.labels, TEST)
    histories = [es.histories[r] for r in range(len(es.users))]
    top, _ = EdgeRecommender(bundle).recommend_indices(histories, 10)
    hits = np.zeros(top.shape, dtype=bool)
    for r in range(len(top)):
        hits[r] = np.isin(top[r], es.targets[r])
    per_user = ndcg(hits, es.targets.lengths(), 10)
    lengths = es.histories.lengths()
    buckets = {b: float(per_user[(lengths >= lo) & (lengths <= hi)].mean()) if ((lengths >= lo) & (lengths <= hi)).any()
               else None for b, (lo, hi) in BUCKETS.items()}
    return float(per_user.mean()), buckets


def edge_row(label: str, run: Run, work: Path, int8: bool) -> dict:
    quiet = dict(log=lambda *_: None)
    export_bundle(run, work / f"{label}-eval", int8=int8, which="eval", parity_users=0, **quiet)
    score, buckets = edge_ndcg(work / f"{label}-eval", run)
    served = export_bundle(run, work / label, int8=int8, parity_users=10**9, **quiet)
    b = work / label
    rec = EdgeRecommender(b)
    everyone = run.histories(np.arange(run.dataset.interactions.n_users))
    rows = [everyone[u] for u in range(len(everyone))]
    sample = np.random.default_rng(0).choice(len(rows), min(LATENCY_USERS, len(rows)), replace=False)
    p50, p99 = _latency(lambda h: rec.recommend_indices([h], 10), [rows[u] for u in sample])
    t0 = time.perf_counter()
    rec.recommend_indices(rows, 10)
    all_s = time.perf_counter() - t0
    first = run.dataset.items.ids[0]
    t0 = time.perf_counter()  # a fresh process: interpreter, imports, checksums, session, one request
    subprocess.run([sys.executable, "-c", "import sys\nfor m in ('torch', 'polars'): sys.modules[m] = None\n"
                    f"from lmrec.edge import EdgeRecommender\nEdgeRecommender({str(b)!r}).recommend([{first!r}])"],
                   check=True)
    cold_s = time.perf_counter() - t0
    table = served["items"]
    table = served["tables"][table["table"]] if "table" in table else table  # tied: the input table
    table_bytes = sum((b / f).stat().st_size for f in [table["file"], table.get("scale")] if f)
    return {"label": label, "ndcg": score, "by_history": buckets, "mb": served["size_bytes"] / 1e6,
            "table_mb": table_bytes / 1e6, "p50_ms": p50, "p99_ms": p99, "all_s": all_s, "cold_s": cold_s,
            "parity": served["parity"]}


def table(rows: list[dict]) -> str:
    head = ("| variant | NDCG@10 | vs fp32 | hist<=5 | 6-20 | >20 | model MB | item table MB | p50 ms | p99 ms "
            "| all users s | parity (top-10 equal, max score diff) | cold start s |")
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    base = next((r["ndcg"] for r in rows if r["label"] == "fp32"), None)

    def f(x, p=4):
        return "-" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.{p}f}"

    for r in rows:
        parity = (f"{r['parity']['top_k_equal']:.2%}, {r['parity']['max_abs_score_diff']:.1g}" if "parity" in r
                  else "")
        ratio = f"{r['ndcg'] / base:.3f}" if base else "-"
        out.append(f"| {r['label']} | {r['ndcg']:.4f} | {ratio} | {f(r['by_history']['<=5'])} "
                   f"| {f(r['by_history']['6-20'])} | {f(r['by_history']['>20'])} | {r['mb']:.2f} | {r['table_mb']:.2f} "
                   f"| {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['all_s']:.2f} | {parity} | {f(r.get('cold_s'), 2)} |")
    return "\n".join(out)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, nargs="?")
    ap.add_argument("--work", type=Path, default=Path("/tmp/lmrec-compression"))
    ap.add_argument("--fine-tune-epochs", type=int, default=3)
    ap.add_argument("--only", help="comma-separated variants to run (default: all)")
    result_options(ap)
    args = ap.parse_args()
    if table_only(args, table):
        sys.exit(0)
    source = Run.open(args.run)
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    print(f"machine: {machine()}; run {args.run} ({source.model_name} on {source.dataset.name})", flush=True)
    variants = [("fp32", None), ("bf16", {"method": "bf16"}), ("int8", {"method": "int8"})]
    for s in (0.5, 0.8):
        variants += [(f"prune {s:.0%}", {"method": "prune", "sparsity": s}),
                     (f"prune {s:.0%} + fine-tune", {"method": "prune", "sparsity": s,
                                                     "fine_tune_epochs": args.fine_tune_epochs})]
    variants += [("structured 50%", {"method": "prune", "sparsity": 0.5, "structured": True}),
                 ("structured 50% + fine-tune", {"method": "prune", "sparsity": 0.5, "structured": True,
                                                 "fine_tune_epochs": args.fine_tune_epochs})]
    variants += [("edge fp32", "edge"), ("edge int8", "edge-int8")]
    only = set(args.only.split(",")) if args.only else None
    rows = []
    for label, spec in variants:
        if only and label not in only:
            continue
        t0 = time.perf_counter()
        torch.manual_seed(0)
        if spec is None:
            copy = args.work / "fp32"
            shutil.copytree(args.run, copy)  # evaluate_run rewrites the report: leave the source alone
            row = torch_row(label, Run.open(copy))
        elif isinstance(spec, str):
            row = edge_row(label.replace(" ", "-"), source, args.work, int8=spec == "edge-int8")
            row["label"] = label
        else:
            out = args.work / label.replace(" ", "-").replace("%", "").replace("+", "ft")
            compress_run(source, out, log=lambda *_: None, **spec)
            row = torch_row(label, Run.open(out))
        row["seconds"] = round(time.perf_counter() - t0, 1)
        rows.append(row)
        append_jsonl(args.jsonl, row | {"run": str(args.run)})
        print(json.dumps({k: v for k, v in row.items() if k != "compression"}), flush=True)
    print(table(rows))
