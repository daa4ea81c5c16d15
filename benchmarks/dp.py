"""Benchmark: what user-level differential privacy costs (DP-SGD through Opacus, the transitions
model's Gaussian release, DP popularity).

``screen``: the DP settings (learning rate, expected batch, width) at one epsilon, chosen on
validation only: the fit of the training part under DP with the noise of a whole run (fit and
refit), validation NDCG@10 after every epoch. No test number is read.

``table``: ``lmrec train`` as a user runs it (fit, test evaluation, refit, DP popularity counts;
the whole command inside the time budget) for each epsilon, with ``FROZEN`` (picked by ``screen``),
next to the same run without privacy (epsilon = infinity) and non-private popularity. Test
NDCG@10 by history bucket, the epsilon the accountant reports as spent, the wall time.

    .venv/bin/python benchmarks/dp.py screen --data ml-1m --epsilon 8
    .venv/bin/python benchmarks/dp.py table --data ml-1m --epsilons 1,4,8,inf --jsonl /tmp/dp.jsonl
    .venv/bin/python benchmarks/dp.py table --data ml-1m --model transitions --epsilons inf,8,4,1
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
# Every row of the screen in docs/benchmarks.md: `screen --only NAME`. Keys: model (default sasrec),
# epsilon and epochs (default: the command's), dp / model / training options; what a variant
# leaves unset follows pipeline.apply_dp_rules.
SCREEN = {
    "non-private lr rule windows 200": {"epochs": 5, "model_cfg": {"max_len": 200},
                                         "training": {"lr": 2e-3, "warmup_steps": 30}},
    "lr 1e-2 windows 200": {"epochs": 3, "model_cfg": {"max_len": 200}, "training": {"lr": 1e-2, "warmup_steps": 3}},
    "lr 3e-2 windows 200": {"epochs": 3, "model_cfg": {"max_len": 200}, "training": {"lr": 3e-2, "warmup_steps": 3}},
    "batch 1024": {"dp": {"batch_size": 1024}, "training": {"lr": 1e-2, "warmup_steps": 3}},
    "adamw": {},
    "adamw d_model 32": {"model_cfg": {"d_model": 32}},
    "sgd lr 0.5": {"dp": {"optimizer": "sgd"}},
    "sgd lr 2": {"dp": {"optimizer": "sgd"}, "training": {"lr": 2.0}},
    "batch 2048 lr 3e-2": {"dp": {"batch_size": 2048}, "training": {"lr": 3e-2, "warmup_steps": 2}},
    "content-only sasrec-text": {"model": "sasrec-text", "model_cfg": {"fusion": "text"}},
    "epsilon 10000": {"epsilon": 1e4, "training": {"warmup_steps": 5}},
}


def screen(args) -> None:
    dataset = load_dataset(args.data)
    inter = dataset.interactions
    labels = make_split(inter, LeaveOneOutConfig())
    train = inter.subset(labels == TRAIN)
    valid = Validator(inter, labels)
    print(f"machine: {machine()}; {args.data}: {inter.n_users:,} users; epsilon {args.epsilon:g} and "
          f"{args.epochs} epochs per fit unless a variant sets them (noise for fit + refit)")
    for name, v in SCREEN.items():
        if args.only and name not in args.only.split(","):
            continue
        seed_everything(0)
        epsilon, epochs = v.get("epsilon", args.epsilon), v.get("epochs", args.epochs)
        dp_cfg = DPConfig(epsilon=epsilon, epochs=epochs, **v.get("dp", {}))
        plan = DPPlan.make(dp_cfg, inter.n_users, fits=2)
        model = create_model(v.get("model", "sasrec"), v.get("model_cfg", {}),
                             training=TrainingConfig(eval_every=1, **v.get("training", {})))
        if model.uses_item_content:
            model.attach_items(dataset.item_info, [])
        apply_dp_rules(model, dp_cfg, plan)
        model.hooks = [DPSGD(Accountant(plan))]
        t0 = time.perf_counter()
        model.fit(train, valid, time_budget_s=3600)
        curve = [round(h["valid"], 4) for h in model.train_state.history]
        row = {"kind": "screen", "data": args.data, "epsilon": epsilon, "variant": name, "noise": plan.noise_multiplier,
               "valid_curve": curve, "seconds": time.perf_counter() - t0}
        print(row, flush=True)
        append_jsonl(args.jsonl, row)


def table_run(args) -> None:
    print(f"machine: {machine()}; {args.data}; lmrec train with the default budget")
    with TemporaryDirectory() as tmp:
        for eps in args.epsilons.split(","):
            model = "pop" if eps == "pop" else args.model
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
    ap.add_argument("--model", default="sasrec", help="table: sasrec (DP-SGD, FROZEN) or transitions (a Gaussian "
                    "release, its defaults)")
    result_options(ap)
    args = ap.parse_args()
    if table_only(args, table):
        sys.exit(0)
    screen(args) if args.part == "screen" else table_run(args)
