"""New users: does a diverse first slate make the first clicks more useful than the popularity list?

1,000 random users (seed 0) are held out entirely; SASRec with no config is fitted on everyone
else (leave-one-out validation among them, ``--minutes`` budget). A held-out user is shown a
slate of 20 (the 20 most popular items, or ``lmrec.coldstart.onboarding.diverse_slate``); they
click the slate items that are in their real history, in slate order, up to 3. After 0 clicks
the recommendations are the slate's first 10; after c clicks the model's top-10 from those
clicks (clicked items excluded). NDCG@10 against the rest of the user's whole history. A user
with fewer matching items keeps the recommendations of their last click. Target: after 3 clicks,
diverse >= 1.1x popularity.

    python benchmarks/onboarding.py --data ml-1m --minutes 5
    python benchmarks/onboarding.py --data beauty --minutes 5
    python benchmarks/onboarding.py --data ml-1m beauty --minutes 5 --tune   # slate chosen on validation users
"""

from __future__ import annotations

import argparse

import numpy as np
from _common import append_jsonl, machine, result_options, table_only

from lmrec.coldstart.onboarding import diverse_slate, item_space
from lmrec.data import load_dataset
from lmrec.data.sequences import Sequences
from lmrec.data.splits import TRAIN, LeaveOneOutConfig, make_split
from lmrec.evaluation import Validator
from lmrec.evaluation import metrics as M
from lmrec.models import create_model
from lmrec.pipeline import seed_everything

SLATE, K, CLICKS = 20, 10, 3


def ndcg(recs: np.ndarray, relevant: list[set]) -> np.ndarray:
    hits = np.array([[i in rel for i in row] for row, rel in zip(recs, relevant, strict=True)])  # (U, K)
    return M.PER_USER["ndcg"](hits, np.array([len(r) for r in relevant]), K)


def simulate(model, slate: np.ndarray, histories: list[np.ndarray]) -> dict:
    clicks = [[int(i) for i in slate if i in set(h.tolist())][:CLICKS] for h in histories]
    out = {"users_with_clicks": [float(np.mean([len(c) >= n for c in clicks])) for n in range(1, CLICKS + 1)]}
    per_user = []
    for c in range(CLICKS + 1):
        relevant = [set(h.tolist()) - set(cl[:c]) for h, cl in zip(histories, clicks, strict=True)]
        if c == 0:
            recs = np.tile(slate[:K], (len(histories), 1))
        else:
            shown = [cl[:c] if cl else [] for cl in clicks]
            recs = np.tile(slate[:K], (len(histories), 1))  # no click at all: still the slate
            rows = [r for r, s in enumerate(shown) if s]
            if rows:
                top, _ = model.recommend(Sequences.from_lists([shown[r] for r in rows]), K)
                recs[rows] = top
        per_user.append(ndcg(recs, relevant))
    out["ndcg"] = [float(v.mean()) for v in per_user]
    out["per_user_last"] = per_user[-1]
    return out


GRID = [(depth, clusters) for depth in (20, 50, 100, 200) for clusters in (2, 5, 10, 20)]  # (candidates, clusters)


def run(dataset: str, minutes: float, users: int, tune: bool, seed: int = 0) -> dict:
    ds = load_dataset(dataset)
    inter = ds.interactions
    rng = np.random.default_rng(0)
    held = rng.choice(inter.n_users, min(users, inter.n_users // 5), replace=False)
    # --tune: as many validation users again, held out too, on which the slate's depth and
    # clusters are chosen (after-3-clicks NDCG@10); the test users are the same as without it.
    valid_users = rng.choice(np.setdiff1d(np.arange(inter.n_users), held), len(held), replace=False) if tune \
        else np.array([], dtype=np.int64)
    rest = inter.subset(~np.isin(inter.user, np.concatenate([held, valid_users])))
    labels = make_split(rest, LeaveOneOutConfig())
    seed_everything(seed)  # the model's fit; the held-out users are the same for every seed
    model = create_model("sasrec", {}, training={"time_budget": minutes, "seed": seed}, runtime={"progress": False})
    model.fit(rest.subset(labels == TRAIN), Validator(rest, labels))
    counts = rest.item_counts()
    space = item_space(model, rest.to_matrix())
    sequences = inter.sequences()
    histories = [sequences[u] for u in held]
    slates = {"popularity": np.argsort(-counts, kind="stable")[:SLATE], "diverse": diverse_slate(space, counts, SLATE)}
    result = {"dataset": dataset, "users": len(held), "minutes": minutes, "seed": seed}
    if tune:
        valid = [sequences[u] for u in valid_users]
        scores = {f"{d}/{c}": simulate(model, diverse_slate(space, counts, SLATE, depth=d, clusters=c), valid)["ndcg"]
                  for d, c in GRID}
        scores["popularity"] = simulate(model, slates["popularity"], valid)["ndcg"]
        best = max(scores, key=lambda name: scores[name][-1])
        print(f"[{dataset}] validation NDCG@10 after 3 clicks: "
              + ", ".join(f"{name} {v[-1]:.4f}" for name, v in scores.items()) + f"; chosen {best}", flush=True)
        result["validation"], result["chosen"] = scores, best
        if best != "popularity":
            d, c = (int(x) for x in best.split("/"))
            slates["diverse"] = diverse_slate(space, counts, SLATE, depth=d, clusters=c)
        else:
            slates["diverse"] = slates["popularity"]
    per_user = {}
    for name, slate in slates.items():
        sim = simulate(model, slate, histories)
        per_user[name] = sim.pop("per_user_last")
        result[name] = sim
    diff = per_user["diverse"] - per_user["popularity"]
    result["diff_after_3"] = float(diff.mean())
    result["diff_se"] = float(diff.std(ddof=1) / np.sqrt(len(diff)))
    return result


def table(results: list[dict]) -> str:
    lines = ["| dataset | slate | NDCG@10 after 0 clicks | 1 | 2 | 3 | users with >= 1 / 3 clicks | "
             "after 3: diverse / popularity (diff +- SE) |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        for name in ("popularity", "diverse"):
            s = r[name]
            last = ""
            if name == "diverse":
                ratio = s["ndcg"][-1] / r["popularity"]["ndcg"][-1] if r["popularity"]["ndcg"][-1] else float("nan")
                last = f"{ratio:.2f}x ({r['diff_after_3']:+.4f} +- {r['diff_se']:.4f})"
            label = f"diverse, chosen on validation: {r['chosen']}" if name == "diverse" and "chosen" in r else name
            lines.append(f"| {r['dataset']}, fit seed {r.get('seed', 0)} | {label} | "
                         + " | ".join(f"{v:.4f}" for v in s["ndcg"])
                         + f" | {s['users_with_clicks'][0]:.0%} / {s['users_with_clicks'][-1]:.0%} | {last} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", nargs="+", default=["ml-1m"])
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--seeds", default="0", help="comma-separated seeds of the model's fit (one row per seed)")
    ap.add_argument("--tune", action="store_true", help="choose the diverse slate's depth and clusters on as many "
                    "held-out validation users (grid GRID; the popularity list is a candidate too)")
    result_options(ap)
    args = ap.parse_args()
    if table_only(args, table):
        return
    results = []
    for dataset in args.data:
        for seed in (int(x) for x in args.seeds.split(",")):
            results.append(run(dataset, args.minutes, args.users, args.tune, seed))
            append_jsonl(args.jsonl, results[-1])
            print(table([results[-1]]), flush=True)
    print(f"\nmachine: {machine()}\n")
    print(table(results))


if __name__ == "__main__":
    main()
