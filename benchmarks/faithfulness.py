"""Faithfulness of the occlusion explanations: does removing the event they blame move the item?

For 1,000 random users (seed 0) of a leave-one-out split, each family's evaluated model (trained on
the training part) recommends from the history before the test event; its top item is explained.
Then one history event is removed: the top-attributed one, a random one (of the same last-50
window that occlusion tries), or the most recent one; the item's new rank (seen items of the full
history still excluded) and score drop are recorded. AOPC: the mean score drop over removing the
top 1..5 events in attribution order, against a random order. Target: median rank drop of the
top-1 deletion >= 2x that of the random deletion. ``--oracle`` adds the best single deletion of the
window (every event tried, the largest rank drop kept): an upper bound for any attribution's top-1
deletion, which tells an attribution that misses from a target that no single event can reach.

    python benchmarks/faithfulness.py --data ml-1m --run /tmp/ml1m-sasrec --families pop itemknn ease sasrec dnn
    python benchmarks/faithfulness.py --data beauty --run runs/beauty --families itemknn ease sasrec text-knn
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from _common import append_jsonl, machine, result_options, table_only

from lmrec.data import load_dataset
from lmrec.data.sequences import Sequences
from lmrec.data.splits import TEST, TRAIN, LeaveOneOutConfig, eval_set, make_split
from lmrec.evaluation import Validator
from lmrec.explain.attribution import MAX_EVENTS, occlusion
from lmrec.models import create_model
from lmrec.models.base import AttendsToHistory
from lmrec.pipeline import seed_everything
from lmrec.runs import Run

AOPC_STEPS = 5


def model_for(family: str, ds, labels, run: Path | None, minutes: float):
    """The family's evaluated model: from ``run`` when it holds that family, else trained here."""
    if run is not None and Run.open(run).model_name == family:
        r = Run.open(run)
        if not np.array_equal(r.labels, labels):
            raise SystemExit(f"{run}: its split differs from the leave-one-out split here")
        return r.load_model("eval")
    seed_everything(0)
    model = create_model(family, {}, training={"time_budget": minutes}, runtime={"progress": False})
    model.attach_items(ds.item_info)
    return model.fit(ds.interactions.subset(labels == TRAIN), Validator(ds.interactions, labels))


def ranks_of(model, histories: list[np.ndarray], items: np.ndarray, seen: list[np.ndarray]) -> tuple[np.ndarray, ...]:
    """(rank, score) of items[r] after histories[r], items in seen[r] excluded; rank 1 is the top."""
    ranks, scores = np.empty(len(items), np.int64), np.empty(len(items))
    with torch.inference_mode():
        for start in range(0, len(items), 512):
            s = model.score(Sequences.from_lists(histories[start : start + 512])).float()  # (B, n_items)
            for j in range(s.shape[0]):
                row = s[j].clone()
                row[torch.from_numpy(seen[start + j])] = -torch.inf
                target = row[items[start + j]]
                ranks[start + j] = int((row > target).sum()) + 1
                scores[start + j] = float(target)
    return ranks, scores


def oracle_rank_drops(model, hist: list[np.ndarray], items: np.ndarray, window: list[int],
                      base_rank: np.ndarray) -> np.ndarray:
    """Per pair, the largest rank drop any one deletion of its window gives the item."""
    best = np.zeros(len(hist), np.int64)
    for start in range(0, len(hist), 64):  # 64 pairs x up to MAX_EVENTS deletions per pass
        pairs = range(start, min(start + 64, len(hist)))
        owner = [r for r in pairs for _ in range(window[r], len(hist[r]))]
        cut = [np.delete(hist[r], p) for r in pairs for p in range(window[r], len(hist[r]))]
        ranks, _ = ranks_of(model, cut, items[owner], [hist[r] for r in owner])
        np.maximum.at(best, np.asarray(owner, np.int64), ranks - base_rank[owner])
    return best


def faithfulness(model, histories: Sequences, rng: np.random.Generator, explained: int = 1,
                 oracle: bool = False) -> dict:
    """Rank drops of the three deletions and AOPC, over ``histories`` (one user each), for each
    of a user's top ``explained`` recommendations (every (user, item) pair counts once)."""
    top, _ = model.recommend(histories, explained)
    users = np.flatnonzero(histories.lengths() > 1)
    user_items = [top[r][top[r] >= 0] for r in users]
    t0 = time.perf_counter()
    per_user = occlusion(model, Sequences.from_lists([histories[r] for r in users]), user_items)  # (M_r, E_r)
    explain_s = (time.perf_counter() - t0) / max(1, len(users))
    hist = [histories[r] for r, its in zip(users, user_items, strict=True) for _ in its]  # one per pair
    items = np.concatenate(user_items)
    drops = [d[m : m + 1] for d in per_user for m in range(len(d))]  # (1, E) per pair
    base_rank, base_score = ranks_of(model, hist, items, hist)
    out = {"users": len(users), "explained": explained, "pairs": len(hist), "explain_ms_per_user": 1000 * explain_s}
    window = [max(0, len(h) - MAX_EVENTS) for h in hist]
    if isinstance(model, AttendsToHistory):  # how often attention points at the event occlusion blames
        per_history = model.history_attention(Sequences.from_lists([histories[r] for r in users]))
        attention = [a for a, its in zip(per_history, user_items, strict=True) for _ in its]  # one per pair
        out["attention_agrees"] = float(np.mean([int(np.argmax(a[w:])) == int(np.argmax(d[0]))
                                                 for a, d, w in zip(attention, drops, window, strict=True)]))
    choices = {
        "top-1": [w + int(np.argmax(d[0])) for w, d in zip(window, drops, strict=True)],
        "random": [int(rng.integers(w, len(h))) for w, h in zip(window, hist, strict=True)],
        "most recent": [len(h) - 1 for h in hist],
    }
    for name, pos in choices.items():
        ranks, scores = ranks_of(model, [np.delete(h, p) for h, p in zip(hist, pos, strict=True)], items, hist)
        out[name] = {"median_rank_drop": float(np.median(ranks - base_rank)),
                     "mean_rank_drop": float(np.mean(ranks - base_rank)),
                     "mean_score_drop": float(np.mean(base_score - scores)),
                     "share_lowered": float(np.mean(scores < base_score))}
    for name, order_of in (("aopc", lambda w, d, h: w + np.argsort(-d[0], kind="stable")),
                           ("aopc_random", lambda w, d, h: rng.permutation(np.arange(w, len(h))))):
        total = np.zeros(len(hist))
        for k in range(1, AOPC_STEPS + 1):
            cut = [np.delete(h, order_of(w, d, h)[:k]) for w, d, h in zip(window, drops, hist, strict=True)]
            _, scores = ranks_of(model, cut, items, hist)
            total += base_score - scores
        out[name] = float(np.mean(total / (AOPC_STEPS + 1)))
    if oracle:
        drop = oracle_rank_drops(model, hist, items, window, base_rank)
        out["oracle"] = {"median_rank_drop": float(np.median(drop)), "mean_rank_drop": float(np.mean(drop)),
                         "share_moved": float(np.mean(drop > 0))}
    return out


def table(results: list[dict]) -> str:
    lines = ["| dataset | family | explained | users | median rank drop: top-1 | random | most recent | "
             "ratio top-1 / random | mean rank drop: top-1 | random | most recent | top-1 lowers the score | "
             "AOPC (top-5, attribution order) | AOPC (random order) | attention's top event = occlusion's | ms per user |"
             " best single deletion (oracle): median rank drop | users it moves |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        oracle = (f" {r['oracle']['median_rank_drop']:g} | {r['oracle']['share_moved']:.0%} |" if "oracle" in r
                  else " - | - |")
        t, rnd, rec = r["top-1"], r["random"], r["most recent"]
        ratio = f"{t['median_rank_drop'] / rnd['median_rank_drop']:.1f}x" if rnd["median_rank_drop"] > 0 else (
            "inf" if t["median_rank_drop"] > 0 else "0 / 0")
        lines.append(f"| {r['dataset']} | {r['family']} | top-{r.get('explained', 1)} | {r['users']} | "
                     f"{t['median_rank_drop']:g} | {rnd['median_rank_drop']:g} | {rec['median_rank_drop']:g} | "
                     f"{ratio} | {t['mean_rank_drop']:.1f} | {rnd['mean_rank_drop']:.1f} | "
                     f"{rec['mean_rank_drop']:.1f} | {t['share_lowered']:.0%} | "
                     f"{r['aopc']:.4f} | {r['aopc_random']:.4f} | "
                     + (f"{r['attention_agrees']:.0%}" if "attention_agrees" in r else "-")
                     + f" | {r['explain_ms_per_user']:.0f} |" + oracle)
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="ml-1m")
    ap.add_argument("--families", nargs="+", default=["pop", "itemknn", "ease", "sasrec"])
    ap.add_argument("--run", type=Path, help="a run whose evaluated model stands for its family (same split)")
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--minutes", type=float, default=5.0, help="time budget of each neural fit made here")
    ap.add_argument("--oracle", action="store_true", help="also the best single deletion of each window "
                    "(every event tried): the most any attribution's top-1 deletion could move the item")
    ap.add_argument("--explained", type=int, default=1, help="explain each of a user's top N recommendations "
                    "(1: the top item only, as in the first table)")
    result_options(ap)
    args = ap.parse_args()
    if table_only(args, table):
        return
    ds = load_dataset(args.data)
    labels = make_split(ds.interactions, LeaveOneOutConfig())
    es = eval_set(ds.interactions, labels, TEST)
    pick = np.sort(np.random.default_rng(0).choice(len(es.users), min(args.users, len(es.users)), replace=False))
    histories = es.histories.take(pick)
    results = []
    for family in args.families:
        model = model_for(family, ds, labels, args.run, args.minutes)
        r = {"dataset": args.data, "family": family} | faithfulness(model, histories, np.random.default_rng(0),
                                                                        args.explained, args.oracle)
        results.append(r)
        append_jsonl(args.jsonl, r)
        print(table([r]).splitlines()[-1], flush=True)
    print(f"\nmachine: {machine()}\n")
    print(table(results))


if __name__ == "__main__":
    main()
