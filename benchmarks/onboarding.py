"""New users: does a diverse first slate make the first clicks more useful than the popularity list?

1,000 random users (seed 0) are held out entirely; SASRec with no config is fitted on everyone
else (leave-one-out validation among them, ``--minutes`` budget). A held-out user is shown a
slate of 20 (the 20 most popular items, or ``lmrec.coldstart.onboarding.diverse_slate``); they
click the slate items that are in their real history, in slate order, up to 3. After 0 clicks
the recommendations are the slate's first 10; after c clicks the model's top-10 from those
clicks (clicked items excluded). NDCG@10 against the rest of the user's whole history. A user
with fewer matching items keeps the recommendations of their last click. Target: after 3 clicks,
diverse >= 1.1x popularity.

The diverse slate's setting (candidates x clusters, a greedy slate built for the clicks of other
training users, or the popularity list) is chosen as
``lmrec train`` chooses it (``lmrec.pipeline.choose_onboarding``: the fit's validation users
treated as new users), or with ``--tune`` on as many more users held out of the fit.

    python benchmarks/onboarding.py --data ml-1m beauty --minutes 5 --seeds 0,1,2
    python benchmarks/onboarding.py --data ml-1m beauty --minutes 5 --tune   # chosen on held-out users
"""

from __future__ import annotations

import argparse

import numpy as np
from _common import append_jsonl, machine, result_options, table_only

from lmrec.coldstart.onboarding import (
    GREEDY_USERS,
    GRID,
    REFERENCE_SLATE,
    SlateSetting,
    choose_setting,
    first_slate,
    item_space,
    kmeans,
    simulate,
)
from lmrec.data import load_dataset
from lmrec.data.splits import TRAIN, LeaveOneOutConfig, make_split
from lmrec.evaluation import Validator
from lmrec.models import create_model
from lmrec.pipeline import choose_onboarding, seed_everything


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
    result = {"dataset": dataset, "users": len(held), "minutes": minutes, "seed": seed}
    if tune:  # chosen on the held-out validation users
        train = rest.subset(labels == TRAIN)
        builders = np.random.default_rng(seed).choice(np.unique(train.user), min(GREEDY_USERS, train.n_users),
                                                      replace=False)
        train_sequences = train.sequences()
        setting, scores = choose_setting(model, space, counts, [sequences[u] for u in valid_users],
                                         builders=[train_sequences[u] for u in np.sort(builders)])
        result["chosen_on"] = "held-out validation users"
    else:  # what `lmrec train` does: chosen on the fit's validation users, treated as new
        choice = choose_onboarding(model, rest, labels, seed)
        setting, scores = SlateSetting.from_dict(choice), choice["ndcg_after_3_clicks"]
        result["chosen_on"] = "lmrec train's validation users"
    print(f"[{dataset}] NDCG@10 after 3 clicks ({result['chosen_on']}): "
          + ", ".join(f"{name} {v:.4f}" for name, v in scores.items()) + f"; chosen {setting.name()}", flush=True)
    result["validation"], result["chosen"] = scores, setting.name()
    slates = {"popularity": first_slate(space, counts, REFERENCE_SLATE, SlateSetting(*GRID[0])),
              "diverse": first_slate(space, counts, REFERENCE_SLATE, setting)}
    per_user = {}
    for name, slate in slates.items():
        sim = simulate(model, slate, histories)
        per_user[name] = sim["ndcg"][-1]
        result[name] = {"ndcg": [float(v.mean()) for v in sim["ndcg"]], "users_with_clicks": sim["users_with_clicks"],
                        "slate": slate.tolist(), **diversity(ds, space, counts, slate)}
    diff = per_user["diverse"] - per_user["popularity"]
    result["diff_after_3"] = float(diff.mean())
    result["diff_se"] = float(diff.std(ddof=1) / np.sqrt(len(diff)))
    return result


def diversity(ds, space: np.ndarray, counts: np.ndarray, slate: np.ndarray) -> dict:
    """How much of the catalogue a slate covers: of 20 k-means clusters of the 200 most popular
    items' vectors (the space the cluster slates are drawn from), and of the genres or categories
    when the items file has them."""
    top = np.argsort(-counts, kind="stable")[:200]
    cluster_of = dict(zip(top.tolist(), kmeans(space[top], 20, seed=0).tolist(), strict=True))
    out = {"clusters": len({cluster_of.get(int(i), -1 - int(i)) for i in slate})}
    info = ds.item_info
    column = next((c for c in ("genres", "categories", "category") if info is not None and c in info.columns), None)
    if column is not None:
        by_id = dict(zip(info["item"].cast(str).to_list(), info[column].to_list(), strict=True))
        tags = [by_id.get(str(i)) or "" for i in ds.items.decode(slate)]
        out["genres"] = len({g for t in tags for g in t.split("|") if g})
    return out


def table(results: list[dict]) -> str:
    lines = ["| dataset | slate | NDCG@10 after 0 clicks | 1 | 2 | 3 | users with >= 1 / 3 clicks | "
             "after 3: diverse / popularity (diff +- SE) | clusters covered (of 20) | genres |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        for name in ("popularity", "diverse"):
            s = r[name]
            last = ""
            if name == "diverse":
                ratio = s["ndcg"][-1] / r["popularity"]["ndcg"][-1] if r["popularity"]["ndcg"][-1] else float("nan")
                last = f"{ratio:.2f}x ({r['diff_after_3']:+.4f} +- {r['diff_se']:.4f})"
            label = f"diverse, chosen on {r.get('chosen_on', 'validation')}: {r['chosen']}" \
                if name == "diverse" and "chosen" in r else name
            lines.append(f"| {r['dataset']}, fit seed {r.get('seed', 0)} | {label} | "
                         + " | ".join(f"{v:.4f}" for v in s["ndcg"])
                         + f" | {s['users_with_clicks'][0]:.0%} / {s['users_with_clicks'][-1]:.0%} | {last} | "
                         f"{s.get('clusters', '-')} | {s.get('genres', '-')} |")
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
