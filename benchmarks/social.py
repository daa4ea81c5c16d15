"""Benchmark: recommendations from the social graph for sparse and new users (Last.fm).

A run trained with `--social` (its evaluated model, trained on the training part). Test users'
histories are cut to their last 0, 1, 3 and 5 events (the held-out target unchanged; the kept
events are what is excluded as seen); Last.fm has no timestamps, so the held-out event is a
random one per user (seeded) and "last" means last in that random order. For each cut, the blend
weight, the friends-of-friends weight and the shared-history weight are picked on validation users
cut the same way; test users with relations then get popularity, the model alone, the
neighbourhood alone and the blend. Friends' histories are their events before the test stage.
NDCG@10 mean +- standard error; with several runs (seeds), each ratio's mean +- std over them.

    lmrec train --data lastfm --model sasrec --out /tmp/lastfm-social \
        --social ../shared/data/lastfm/hetrec2011-lastfm-2k/user_friends.dat
    .venv/bin/python benchmarks/social.py --run /tmp/lastfm-social
    # seeds: the same with --config setting training.seed = 1, 2, then
    .venv/bin/python benchmarks/social.py --run /tmp/lastfm-social /tmp/lastfm-social-1 /tmp/lastfm-social-2

`--oracle` also reads every weight combination on the test users and reports the best one's ratio
to the model: the blend family's ceiling, never a figure a user gets.

Another held-out artist per user: `--lastfm-order SEED FILE` writes the plays with each user's
artists in another random order (the `lastfm` dataset uses seed 0), to train with `--data FILE`.
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
from lmrec.social.blend import StageData, best_combo, grid, score_variants  # noqa: E402

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
    """Every (run, cut), then, with several runs (seeds), each ratio's mean +- std over them per cut."""
    head = ("| run | events kept | users | popularity | model | social only | blend (alpha, fof, sim) | blend / "
            "popularity (95% CI) | blend / model (95% CI) |")
    oracle = any("oracle" in r for r in rows)
    if oracle:
        head += " test-oracle weights: blend / model |"
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        line = (f"| {Path(r['run']).name} | {r['cut']} | {r['users']:,} | {r['popularity']} | {r['model']} | "
                f"{r['social']} | {r['blend']} ({r['alpha']:g}, {r['fof']:g}, {r.get('sim', 0):g}) | "
                f"{r['vs_pop']:.2f} ({r['pop_ci'][0]:.2f}-{r['pop_ci'][1]:.2f}) "
                f"| {r['vs_model']:.2f} ({r['model_ci'][0]:.2f}-{r['model_ci'][1]:.2f}) |")
        if oracle:
            o = r.get("oracle")
            line += f" {o['vs_model']:.2f} ({', '.join(f'{w:g}' for w in o['combo'])}) |" if o else " - |"
        out.append(line)
    runs = sorted({r["run"] for r in rows})
    if len(runs) > 1:
        out += ["", f"| events kept | blend / popularity over {len(runs)} runs | blend / model |"
                    + (" test-oracle weights: blend / model |" if oracle else ""), "|---|---|---|" + "---|" * oracle]
        for cut in sorted({r["cut"] for r in rows}):
            per = [r for r in rows if r["cut"] == cut]
            pop, mod = (np.array([r[k] for r in per]) for k in ("vs_pop", "vs_model"))
            line = f"| {cut} | {pop.mean():.2f} +- {pop.std(ddof=1):.2f} | {mod.mean():.2f} +- {mod.std(ddof=1):.2f} |"
            if oracle:
                top = np.array([r["oracle"]["vs_model"] for r in per if "oracle" in r])
                line += f" {top.mean():.2f} +- {top.std(ddof=1):.2f} |" if len(top) > 1 else " - |"
            out.append(line)
    return "\n".join(out)


def write_lastfm_order(seed: int, out: Path) -> None:
    """Last.fm's plays as an event file whose timestamps put each user's artists in a random order
    (seed): leave-one-out on it holds out another random artist per user."""
    import polars as pl

    from lmrec.data.datasets import data_dir

    plays = pl.read_csv(data_dir() / "lastfm" / "hetrec2011-lastfm-2k" / "user_artists.dat", separator="\t")
    order = np.random.default_rng(seed).permutation(plays.height)
    plays.select(pl.col("userID").alias("user_id"), pl.col("artistID").alias("item_id"),
                 pl.col("weight").alias("rating"), pl.Series("timestamp", order)).write_csv(out)
    print(f"wrote {plays.height:,} plays to {out} (order seed {seed})")


def measure(path: Path, jsonl: Path | None, oracle: bool = False) -> list[dict]:
    run = Run.open(path)
    social = run.social()
    if social is None:
        sys.exit(f"{path} was trained without --social")
    model = run.load_model("eval")
    data, labels = run.dataset.interactions, run.labels
    adj = adjacency(index_pairs(social, run.dataset.users), data.n_users)
    degree = np.asarray(adj.sum(axis=1)).ravel()
    print(f"machine: {machine()}; run {path} ({run.model_name} on {run.dataset.name}); "
          f"{int((degree > 0).sum()):,} of {data.n_users:,} users have relations (median {np.median(degree):g})")
    rows = []
    valid_stage, test_stage = StageData.of(data, labels, VALID), StageData.of(data, labels, TEST)
    for cut in CUTS:
        combos = grid(cut != 0)
        valid = score_variants(model, valid_stage, adj, cut, combos)
        best = best_combo({c: float(valid.blends[c].mean()) for c in combos})
        test = score_variants(model, test_stage, adj, cut, combos if oracle else [best])
        b = test.blends[best]
        by_degree = {}
        for name, lo, hi in (("1-2 relations", 1, 2), ("3-10", 3, 10), (">10", 11, 10**9)):
            mask = (degree[test.users] >= lo) & (degree[test.users] <= hi)
            by_degree[name] = {"users": int(mask.sum()), "blend": float(b[mask].mean()) if mask.any() else None,
                               "model": float(test.model[mask].mean()) if mask.any() else None}
        row = {"run": str(path), "cut": cut, "users": len(test.users), "popularity": ms(test.popularity),
               "model": ms(test.model), "social": ms(test.social), "blend": ms(b), "alpha": best[0], "fof": best[1],
               "sim": best[2], "vs_pop": float(b.mean() / max(test.popularity.mean(), 1e-12)),
               "vs_model": float(b.mean() / max(test.model.mean(), 1e-12)), "by_degree": by_degree,
               "pop_ci": ratio_ci(b, test.popularity), "model_ci": ratio_ci(b, test.model),
               "valid_blend": float(valid.blends[best].mean())}
        if oracle:  # the family's ceiling: the weights read on test, never a product choice
            top = best_combo({c: float(test.blends[c].mean()) for c in combos})
            row["oracle"] = {"combo": list(top), "vs_model": float(test.blends[top].mean() / max(test.model.mean(), 1e-12))}
        rows.append(row)
        append_jsonl(jsonl, row)
        print({k: (float(v) if isinstance(v, np.floating) else v) for k, v in row.items()}, flush=True)
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, nargs="+", help="runs trained with --social (several: one per seed)")
    ap.add_argument("--oracle", action="store_true",
                    help="also read every weight combination on test and report the best one's ratio to the model: "
                         "the ceiling of the blend family, not a figure a user gets")
    ap.add_argument("--lastfm-order", nargs=2, metavar=("SEED", "FILE"),
                    help="only write Last.fm's plays in the random order SEED to FILE (CSV)")
    result_options(ap)
    args = ap.parse_args()
    if args.lastfm_order:
        write_lastfm_order(int(args.lastfm_order[0]), Path(args.lastfm_order[1]))
        sys.exit(0)
    if table_only(args, table):
        sys.exit(0)
    if not args.run:
        ap.error("give --run RUN (a run trained with --social), --table FILE or --lastfm-order SEED FILE")
    print(table([row for path in args.run for row in measure(path, args.jsonl, args.oracle)]))
