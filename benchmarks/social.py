"""Benchmark: recommendations from the social graph for sparse and new users (Last.fm).

A run trained with `--social` (its evaluated model, trained on the training part). Test users'
histories are cut to their last 0, 1, 3 and 5 events (the held-out target unchanged; the kept
events are what is excluded as seen); Last.fm has no timestamps, so the held-out event is a
random one per user (seeded) and "last" means last in that random order. For each cut, the blend
weight and the friends-of-friends weight are picked on validation users cut the same way; test
users with relations then get popularity, the model alone, the neighbourhood alone and the blend.
Friends' histories are their events before the test stage. NDCG@10 mean +- standard error.

    lmrec train --data lastfm --model sasrec --out /tmp/lastfm-social \
        --social ../shared/data/lastfm/hetrec2011-lastfm-2k/user_friends.dat
    .venv/bin/python benchmarks/social.py --run /tmp/lastfm-social
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import append_jsonl, machine, result_options, table_only  # noqa: E402

from lmrec.data.splits import TEST, VALID  # noqa: E402
from lmrec.runs import Run  # noqa: E402
from lmrec.social import adjacency, index_pairs  # noqa: E402
from lmrec.social.blend import ALPHAS, FOF_WEIGHTS, StageData, score_variants  # noqa: E402

CUTS = (0, 1, 3, 5)


def ms(x: np.ndarray) -> str:
    return f"{x.mean():.4f} +- {x.std(ddof=1) / np.sqrt(len(x)):.4f}" if len(x) > 1 else "-"


def ratio_ci(a: np.ndarray, b: np.ndarray, seed: int = 0, n: int = 2000) -> tuple[float, float]:
    """95% paired-bootstrap interval (users resampled) of mean(a) / mean(b)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), (n, len(a)))
    r = a[idx].mean(1) / np.maximum(b[idx].mean(1), 1e-12)
    return float(np.percentile(r, 2.5)), float(np.percentile(r, 97.5))


def table(rows: list[dict]) -> str:
    head = ("| events kept | users | popularity | model | social only | blend (alpha, fof) | blend / popularity "
            "(95% CI) | blend / model (95% CI) |")
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        out.append(f"| {r['cut']} | {r['users']:,} | {r['popularity']} | {r['model']} | {r['social']} | {r['blend']} "
                   f"({r['alpha']:g}, {r['fof']:g}) | {r['vs_pop']:.2f} ({r['pop_ci'][0]:.2f}-{r['pop_ci'][1]:.2f}) "
                   f"| {r['vs_model']:.2f} ({r['model_ci'][0]:.2f}-{r['model_ci'][1]:.2f}) |")
    return "\n".join(out)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path)
    result_options(ap)
    args = ap.parse_args()
    if table_only(args, table):
        sys.exit(0)
    run = Run.open(args.run)
    social = run.social()
    if social is None:
        sys.exit(f"{args.run} was trained without --social")
    model = run.load_model("eval")
    data, labels = run.dataset.interactions, run.labels
    adj = adjacency(index_pairs(social, run.dataset.users), data.n_users)
    degree = np.asarray(adj.sum(axis=1)).ravel()
    print(f"machine: {machine()}; run {args.run} ({run.model_name} on {run.dataset.name}); "
          f"{int((degree > 0).sum()):,} of {data.n_users:,} users have relations (median {np.median(degree):g})")
    combos = [(a, f) for a in ALPHAS for f in FOF_WEIGHTS]
    rows = []
    valid_stage, test_stage = StageData.of(data, labels, VALID), StageData.of(data, labels, TEST)
    for cut in CUTS:
        valid = score_variants(model, valid_stage, adj, cut, combos)
        best = max(combos, key=lambda c: (valid.blends[c].mean(), -c[0], -c[1]))
        test = score_variants(model, test_stage, adj, cut, [best])
        b = test.blends[best]
        by_degree = {}
        for name, lo, hi in (("1-2 relations", 1, 2), ("3-10", 3, 10), (">10", 11, 10**9)):
            mask = (degree[test.users] >= lo) & (degree[test.users] <= hi)
            by_degree[name] = {"users": int(mask.sum()), "blend": float(b[mask].mean()) if mask.any() else None,
                               "model": float(test.model[mask].mean()) if mask.any() else None}
        row = {"cut": cut, "users": len(test.users), "popularity": ms(test.popularity), "model": ms(test.model),
               "social": ms(test.social), "blend": ms(b), "alpha": best[0], "fof": best[1],
               "vs_pop": float(b.mean() / max(test.popularity.mean(), 1e-12)),
               "vs_model": float(b.mean() / max(test.model.mean(), 1e-12)), "by_degree": by_degree,
               "pop_ci": ratio_ci(b, test.popularity), "model_ci": ratio_ci(b, test.model),
               "valid_blend": float(valid.blends[best].mean())}
        rows.append(row)
        append_jsonl(args.jsonl, row | {"run": str(args.run)})
        print({k: (float(v) if isinstance(v, np.floating) else v) for k, v in row.items()}, flush=True)
    print(table(rows))
