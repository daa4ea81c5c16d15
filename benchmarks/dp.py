"""Benchmark: what user-level differential privacy costs (DP-SGD through Opacus, DP popularity).

``screen``: the DP settings (learning rate, expected batch, width) at one epsilon, chosen on
validation only: the fit of the training part under DP with the noise of a whole run (fit and
refit), validation NDCG@10 after every epoch. No test number is read.

``table``: ``lmrec train`` as a user runs it (fit, test evaluation, refit, DP popularity counts;
the whole command inside the time budget) for each epsilon, with ``FROZEN`` (picked by ``screen``),
next to the same run without privacy (epsilon = infinity) and non-private popularity. Test
NDCG@10 by history bucket, the epsilon the accountant reports as spent, the wall time.

    .venv/bin/python benchmarks/dp.py screen --data ml-1m --epsilon 8
    .venv/bin/python benchmarks/dp.py table --data ml-1m --epsilons 1,4,8,inf --jsonl /tmp/dp.jsonl
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

sys.path.insert(0, str(Path(__file__).parent))
from _common import append_jsonl, machine, result_options, table_only  # noqa: E402

from lmrec.config import RunConfig  # noqa: E402
from lmrec.data import load_dataset  # noqa: E402
from lmrec.data.splits import TRAIN, LeaveOneOutConfig, make_split  # noqa: E402
from lmrec.evaluation import Validator  # noqa: E402
from lmrec.models import create_model  # noqa: E402
from lmrec.pipeline import apply_dp_rules, seed_everything, train_run  # noqa: E402
from lmrec.privacy.dp import DPSGD, Accountant, DPConfig, DPPlan  # noqa: E402
from lmrec.training.config import TrainingConfig  # noqa: E402

# Picked by `screen` on ML-1M validation at epsilon 8 (docs/benchmarks.md); {} = the library's DP rules.
FROZEN: dict = {"dp": {}, "model": {}, "training": {}}
SCREEN = [  # (name, dp options, model options, training options); the rest: pipeline.apply_dp_rules
    ("adamw", {}, {}, {}),
    ("adamw d_model 32", {}, {"d_model": 32}, {}),
    ("sgd lr 0.5", {"optimizer": "sgd"}, {}, {}),
    ("sgd lr 2", {"optimizer": "sgd"}, {}, {"lr": 2.0}),
]


def screen(args) -> None:
    dataset = load_dataset(args.data)
    inter = dataset.interactions
    labels = make_split(inter, LeaveOneOutConfig())
    train = inter.subset(labels == TRAIN)
    valid = Validator(inter, labels)
    print(f"machine: {machine()}; {args.data}: {inter.n_users:,} users; epsilon {args.epsilon:g}, "
          f"{args.epochs} epochs per fit (noise for fit + refit)")
    for name, dp, model_cfg, training in SCREEN:
        if args.only and name not in args.only.split(","):
            continue
        seed_everything(0)
        dp_cfg = DPConfig(epsilon=args.epsilon, epochs=args.epochs, **dp)
        plan = DPPlan.make(dp_cfg, inter.n_users, fits=2)
        model = create_model("sasrec", model_cfg, training=TrainingConfig(eval_every=1, **training))
        apply_dp_rules(model, dp_cfg, plan)
        model.hooks = [DPSGD(Accountant(plan))]
        t0 = time.perf_counter()
        model.fit(train, valid, time_budget_s=3600)
        curve = [round(h["valid"], 4) for h in model.train_state.history]
        row = {"kind": "screen", "data": args.data, "epsilon": args.epsilon, "variant": name, "noise": plan.noise_multiplier,
               "valid_curve": curve, "seconds": time.perf_counter() - t0}
        print(row, flush=True)
        append_jsonl(args.jsonl, row)


def table_run(args) -> None:
    print(f"machine: {machine()}; {args.data}; lmrec train with the default budget")
    with TemporaryDirectory() as tmp:
        for eps in args.epsilons.split(","):
            model = "pop" if eps == "pop" else "sasrec"
            config = {"model": dict(FROZEN["model"]), "training": dict(FROZEN["training"])} if model == "sasrec" else {}
            if eps not in ("inf", "pop"):
                config["privacy"] = {"dp": {"epsilon": float(eps), **FROZEN["dp"]}}
            t0 = time.perf_counter()
            result = train_run(args.data, model, Path(tmp) / eps, RunConfig.model_validate(config), log=lambda _: None)
            s = result.summary
            row = {"kind": "table", "data": args.data, "epsilon": eps, "model": model,
                   "ndcg@10": s["overall"]["ndcg@10"], "hr@10": s["overall"]["hr@10"],
                   "by_history": {b: v["ndcg@10"] for b, v in s["by_history"].items()},
                   "spent": s.get("privacy", {}).get("epsilon"), "wall_s": time.perf_counter() - t0}
            print(row, flush=True)
            append_jsonl(args.jsonl, row)


def table(rows: list[dict]) -> str:
    out = ["| dataset | epsilon (target) | epsilon spent | model | HR@10 | NDCG@10 | hist<=5 | 6-20 | >20 | "
           "NDCG / popularity | wall s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    rows = [r for r in rows if r["kind"] == "table"]
    pop = {r["data"]: r["ndcg@10"] for r in rows if r["model"] == "pop"}
    for r in rows:
        h = r["by_history"]
        ratio = f"{r['ndcg@10'] / pop[r['data']]:.2f}" if pop.get(r["data"]) else "-"
        spent = "-" if r["spent"] is None else f"{r['spent']:.2f}"
        out.append(f"| {r['data']} | {r['epsilon']} | {spent} | {r['model']} | {r['hr@10']:.4f} | {r['ndcg@10']:.4f} | "
                   + " | ".join("-" if h.get(b) is None else f"{h[b]:.4f}" for b in ("<=5", "6-20", ">20"))
                   + f" | {ratio} | {r['wall_s']:.0f} |")
    return "\n".join(out)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("part", choices=["screen", "table"])
    ap.add_argument("--data", default="ml-1m")
    ap.add_argument("--epsilon", type=float, default=8.0, help="screen: the epsilon of the screen")
    ap.add_argument("--epochs", type=int, default=DPConfig.model_fields["epochs"].default, help="screen: per fit")
    ap.add_argument("--only", help="screen: comma-separated variant names")
    ap.add_argument("--epsilons", default="pop,inf,8,4,1", help="table: 'pop', 'inf' or numbers, comma-separated")
    result_options(ap)
    args = ap.parse_args()
    if table_only(args, table):
        sys.exit(0)
    screen(args) if args.part == "screen" else table_run(args)
