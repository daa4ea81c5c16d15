"""Benchmark: what a user gets without a config, next to the frozen configs, and the refit check.

For each (dataset, model):
- no config: the whole `lmrec train --data D --model M` command (library call ``train_run`` with
  an empty RunConfig: every setting "auto", the default time budget), its wall time, and the
  test metrics of the evaluated (early-stopped) model;
- refit check: the served model's procedure (training.refit_start: from the evaluated weights,
  the last 10% of the evaluated run's epochs up to the best one, or fresh weights and all of
  them; each step at the learning rate the evaluated run had at the same point, no validation)
  applied with another seed to the training part alone and to the training part plus the
  validation events, evaluated on test: it should reach the early-stopped model's NDCG@10
  within 2%;
- frozen: the frozen config of benchmarks/sasrec.py / text.py (or FROZEN below), fit + test.

Protocol: leave-one-out, full ranking, seen items excluded (as everywhere).

    .venv/bin/python benchmarks/defaults.py ml-100k                  # sasrec: no config, refit check, frozen
    .venv/bin/python benchmarks/defaults.py beauty:sasrec-text       # the content model
    .venv/bin/python benchmarks/defaults.py ml-1m no-config refit    # only some parts
    .venv/bin/python benchmarks/defaults.py lastfm screen            # validation screen behind FROZEN
    .venv/bin/python benchmarks/defaults.py lastfm --seeds 0,1,2     # several seeds (training.seed / run seed)
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, markdown_rows, run_one  # noqa: E402
from sasrec import CONFIGS as SEQ  # noqa: E402
from text import runs as text_runs  # noqa: E402

from lmrec.config import RunConfig  # noqa: E402
from lmrec.data.splits import TEST, TRAIN  # noqa: E402
from lmrec.evaluation import EvalConfig, evaluate  # noqa: E402
from lmrec.pipeline import seed_everything, train_run  # noqa: E402
from lmrec.runs import Run  # noqa: E402
from lmrec.training.config import RuntimeConfig  # noqa: E402

# Frozen configs of the two datasets that had none: the best validation NDCG@10 of SCREEN
# (`defaults.py DATASET screen`; docs/benchmarks.md, ninth session).
_TUNED = {"d_model": 64, "n_layers": 2, "n_heads": 2, "batch_size": 64, "lr": 2e-3, "lr_schedule": "cosine",
          "warmup_steps": 30, "init_std": 0.02, "bf16": True, "eval_every": 2, "patience": 5, "epochs": 400,
          "loss_norm": "epoch", "max_train_minutes": 12}
SCREEN = {"ML-100K-like, max_len 200": _TUNED | {"dropout": 0.2, "weight_decay": 0.0, "max_len": 200},
          "ML-100K-like, max_len 50": _TUNED | {"dropout": 0.2, "weight_decay": 0.0, "max_len": 50},
          "Beauty-like, max_len 200": _TUNED | {"dropout": 0.5, "weight_decay": 0.1, "max_len": 200},
          "Beauty-like, max_len 50": _TUNED | {"dropout": 0.5, "weight_decay": 0.1, "max_len": 50}}
FROZEN = {
    ("ml-100k", "sasrec"): SEQ[("ml-100k", "sasrec")],
    ("ml-1m", "sasrec"): SEQ[("ml-1m", "sasrec")],
    ("beauty", "sasrec"): SEQ[("beauty", "sasrec")],
    ("beauty", "sasrec-text"): next(c for label, _, c in text_runs("beauty") if "fused" in label),
    ("ml-1m", "sasrec-text"): next(c for label, _, c in text_runs("ml-1m") if "fused" in label),
    ("ml-latest-small", "sasrec"): SCREEN["Beauty-like, max_len 200"],  # validation 0.0732 (ML-100K-like: 0.0728)
    ("lastfm", "sasrec"): SCREEN["ML-100K-like, max_len 200"],  # validation 0.0975 (others 0.0921-0.0934)
}
PARTS = ("no-config", "refit", "frozen", "screen")


def no_config(dataset: str, model: str, work: Path, seed: int = 0) -> dict:
    config = RunConfig.model_validate({"runtime": {"progress": False}, "training": {"seed": seed}})
    t0 = time.perf_counter()
    result = train_run(dataset, model, work / f"run-{seed}", config, log=lambda line: print("   ", line, flush=True))
    wall = time.perf_counter() - t0
    meta = json.loads((result.run_dir / "run.json").read_text())
    return {"dataset": dataset, "model": model, "label": f"{model}, no config, seed {seed}", "summary": result.summary,
            "fit_s": wall, "eval_s": result.timings["evaluate_s"], "run_dir": result.run_dir, "timings": result.timings,
            "auto": meta["auto_choices"]}


def refit_check(run_dir: Path, seed: int = 1) -> list[dict]:
    """The served model's procedure applied to data without the test events, evaluated on test:
    the training part alone (the evaluated model's data) and the training part plus the validation
    events (as the served model gets events the evaluated one never saw)."""
    run = Run.open(run_dir)
    evaluated = run.load_model("eval")
    evaluated.runtime = RuntimeConfig(progress=False)
    rows = []
    for what, mask in (("training part", run.labels == TRAIN), ("training + validation events", run.labels != TEST)):
        seed_everything(seed)
        t0 = time.perf_counter()
        refitted = evaluated.refit(run.dataset.interactions.subset(mask))
        fit_s = time.perf_counter() - t0
        summary = evaluate(refitted, run.dataset.interactions, run.labels, TEST, EvalConfig(ks=[10])).summary()
        st = refitted.train_state
        print(f"    refit procedure ({evaluated.training.refit_start} start) on the {what} (seed {seed}): {st.epoch} "
              f"epochs, {st.steps} steps, {fit_s:.0f}s: NDCG@10 {summary['overall']['ndcg@10']:.4f}", flush=True)
        rows.append({"dataset": run.dataset.name, "model": run.model_name,
                     "label": f"{run.model_name}, refit procedure on the {what}", "summary": summary,
                     "fit_s": fit_s, "eval_s": 0.0})
    return rows


def main() -> None:
    args = sys.argv[1:]
    seeds = [int(x) for x in args[args.index("--seeds") + 1].split(",")] if "--seeds" in args else [0]
    args = [a for j, a in enumerate(args) if a != "--seeds" and (j == 0 or args[j - 1] != "--seeds")]
    parts = [a for a in args if a in PARTS] or ["no-config", "refit", "frozen"]
    wanted = [a for a in args if a not in PARTS]
    keys = [k for k in FROZEN if not wanted or f"{k[0]}:{k[1]}" in wanted or (k[0] in wanted and k[1] == "sasrec")]
    for dataset, model in keys:
        work = Path(tempfile.mkdtemp(prefix="lmrec-defaults-"))
        rows = []
        if "screen" in parts:  # validation only: the pick becomes FROZEN's config
            for label, config in SCREEN.items():
                st = run_one(dataset, model, config, test=False)["fitted"].train_state
                print(f"[{dataset} screen] {label}: best validation NDCG@10 {st.best_score:.4f} at epoch "
                      f"{st.best_epoch} of {st.epoch}", flush=True)
        try:
            for seed in seeds:
                if "no-config" in parts or "refit" in parts:
                    r = no_config(dataset, model, work, seed)
                    t = r["timings"]
                    print(f"[{dataset} {model}] no config, seed {seed}: NDCG@10 {r['summary']['overall']['ndcg@10']:.4f}, "
                          f"{r['fit_s']:.0f}s in all (fit {t['fit_s']:.0f}, refit {t.get('refit_s', 0):.0f}, "
                          f"evaluate {t['evaluate_s']:.0f})", flush=True)
                    rows.append(r)
                    if "refit" in parts:
                        checks = refit_check(r["run_dir"], seed=seed + 1)
                        rows += checks
                        ratios = " / ".join(f"{c['summary']['overall']['ndcg@10'] / r['summary']['overall']['ndcg@10']:.3f}"
                                            for c in checks)
                        print(f"[{dataset} {model}] refit procedure / early-stopped NDCG@10 (training part / + "
                              f"validation events): {ratios}", flush=True)
                if "frozen" in parts:
                    r = run_one(dataset, model, FROZEN[(dataset, model)], seed=seed)
                    r["label"] = f"{model}, frozen config, seed {seed}"
                    st = r["fitted"].train_state
                    print(f"[{dataset} {model}] frozen, seed {seed}: NDCG@10 {r['summary']['overall']['ndcg@10']:.4f}, "
                          f"fit {r['fit_s']:.0f}s, best epoch {st.best_epoch} of {st.epoch}", flush=True)
                    rows.append(r)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        if rows:
            print(f"\n### {dataset}, {model}\nmachine: {machine()}\n(fit s: the whole command for the no-config row)\n")
            print(markdown_rows(rows), flush=True)


if __name__ == "__main__":
    main()
