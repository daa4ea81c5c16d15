"""Benchmark: augmentation ablation (none / contrastive / prior / gan / combinations) at equal compute.

Every variant is the same frozen SASRec config (benchmarks/sasrec.py) with the same fit budget
(``--minutes``; the augmentation's own work, e.g. training the reversed model or the generator,
is spent inside it), leave-one-out, full ranking, seen items excluded. Each run prints one JSON
line (validation and test NDCG@10 overall and by bucket, fit time, the augmentation summary) and
the script ends with a markdown table; ``--jsonl FILE`` appends the lines to a file, and
``--table FILE...`` prints mean +- std over seeds from such files. Choices (the recommended
combination per profile) are read from the validation columns only.

    .venv/bin/python benchmarks/augmentation.py ml-100k --seeds 0,1,2
    .venv/bin/python benchmarks/augmentation.py beauty none contrastive --minutes 10 --jsonl /tmp/aug.jsonl
    .venv/bin/python benchmarks/augmentation.py ml-100k --auto --seeds 0,1   # settings "auto" (no config)
    .venv/bin/python benchmarks/augmentation.py beauty --auto --model sasrec-text none gan-light
    .venv/bin/python benchmarks/augmentation.py --table /tmp/aug.jsonl
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import append_jsonl, machine, result_options, run_one, table_only  # noqa: E402
from sasrec import CONFIGS as SEQ  # noqa: E402

from lmrec.augment.config import AugmentationConfig  # noqa: E402
from lmrec.augment.plan import Augmenter  # noqa: E402

# name -> the augmentation section. The first six use each method's defaults; the "light" ones
# were written after the first Beauty round (all six defaults lost on validation) to test the
# diagnosis: fewer pseudo-prior items on the shortest histories only, then real data alone; fewer
# virtual users per epoch.
VARIANTS = {"none": {"methods": []}, "contrastive": {"methods": ["contrastive"]}, "prior": {"methods": ["prior"]},
            "gan": {"methods": ["gan"]}, "contrastive+prior": {"methods": ["contrastive", "prior"]},
            "all": {"methods": ["contrastive", "prior", "gan"]},
            "prior-light": {"methods": ["prior"], "prior": {"k": 2, "max_history": 5, "pretrain_share": 0.5}},
            "gan-light": {"methods": ["gan"], "gan": {"weight": 0.1}},
            # Twentieth session: the contrastive term on cosine similarity with a small temperature
            # (SimCLR's form), the variant the first round left untried.
            "contrastive-cos": {"methods": ["contrastive"], "contrastive": {"similarity": "cosine", "temperature": 0.2}},
            "contrastive-cos-light": {"methods": ["contrastive"],
                                      "contrastive": {"similarity": "cosine", "temperature": 0.5, "weight": 0.05}},
            # Twenty-eighth session: the content model's own view (content neighbours) in the light form.
            "contrastive-substitute-light": {"methods": ["contrastive"], "contrastive": {
                "similarity": "cosine", "temperature": 0.5, "weight": 0.05, "views": ["substitute", "crop"]}}}
DATASETS = ("ml-100k", "ml-1m", "beauty")
BUCKETS = ("<=5", "6-20", ">20")


def needs_item_text(variant: str) -> bool:
    """Whether the variant's views substitute content neighbours (only sasrec-text has them)."""
    return "substitute" in VARIANTS[variant].get("contrastive", {}).get("views", [])


def record(dataset: str, variant: str, seed: int, minutes: float | None, auto: bool = False,
           model: str = "sasrec") -> dict:
    config = {} if auto else dict(SEQ[(dataset, model)])
    if minutes is not None:
        config["max_train_minutes"] = minutes
    aug = AugmentationConfig.model_validate(VARIANTS[variant])
    augmenter = Augmenter(aug, aug.methods, seed=seed) if aug.methods else None
    r = run_one(dataset, model, config, seed=seed, augmentation=augmenter, auto=auto)
    s, v, st = r["summary"], r["valid_summary"], r["fitted"].train_state
    return {"dataset": dataset, "model": model, "variant": variant, "seed": seed, "minutes": config.get("max_train_minutes"),
            "settings": "auto" if auto else "frozen",
            "valid_ndcg@10": v["overall"]["ndcg@10"], "valid_<=5": v["by_history"]["<=5"]["ndcg@10"],
            "ndcg@10": s["overall"]["ndcg@10"], "hr@10": s["overall"]["hr@10"],
            **{f"ndcg@10 {b}": s["by_history"][b]["ndcg@10"] for b in BUCKETS},
            "ndcg@10 head": s["by_popularity"]["head"]["ndcg@10"], "ndcg@10 tail": s["by_popularity"]["tail"]["ndcg@10"],
            "epochs": st.epoch, "best_epoch": st.best_epoch, "fit_s": round(r["fit_s"], 1),
            "augmentation": r["fitted"].augmentation_summary}


COLUMNS = ["valid_ndcg@10", "valid_<=5", "ndcg@10", *(f"ndcg@10 {b}" for b in BUCKETS), "ndcg@10 head",
           "ndcg@10 tail", "fit_s"]


def table(rows: list[dict]) -> str:
    """Mean +- std over seeds per (dataset, model, settings, variant), in VARIANTS order."""
    lines = ["| dataset | model | settings | variant | seeds | " + " | ".join(COLUMNS) + " |",
             "|" + "---|" * (len(COLUMNS) + 5)]
    models = dict.fromkeys(r.get("model", "sasrec") for r in rows)  # the rows' models, first seen first
    for dataset, model, settings, variant in itertools.product(DATASETS, models, ("frozen", "auto"), VARIANTS):
        group = [r for r in rows if r["dataset"] == dataset and r["variant"] == variant
                 and r.get("model", "sasrec") == model and r.get("settings", "frozen") == settings]
        if not group:
            continue
        cells = []
        for c in COLUMNS:
            x = np.array([np.nan if r[c] is None else r[c] for r in group], dtype=float)
            if np.isnan(x).all():
                cells.append("-")
            elif c == "fit_s":
                cells.append(f"{np.nanmean(x):.0f}")
            else:
                cells.append(f"{np.nanmean(x):.4f}" + (f" +- {np.nanstd(x, ddof=1):.4f}" if len(x) > 1 else ""))
        lines.append(f"| {dataset} | {model} | {settings} | {variant} | {len(group)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", metavar="DATASET|VARIANT",
                    help=f"one dataset ({', '.join(DATASETS)}; default ml-100k) and the variants to run "
                    f"({', '.join(VARIANTS)}; default all that the model can train)")
    ap.add_argument("--seeds", default="0", help="comma-separated training seeds")
    ap.add_argument("--minutes", type=float, help="the fit's time budget (default: the config's)")
    ap.add_argument("--model", default="sasrec", choices=("sasrec", "sasrec-text", "dnn"))
    ap.add_argument("--auto", action="store_true", help='settings "auto" (no config) instead of the frozen config')
    result_options(ap)
    args = ap.parse_args()
    if table_only(args, table):
        return
    unknown = [n for n in args.names if n not in DATASETS and n not in VARIANTS]
    datasets = [n for n in args.names if n in DATASETS]
    if unknown or len(datasets) > 1:
        ap.error(f"expected one dataset and variant names, got {unknown or datasets}")
    dataset, model = (datasets or ["ml-100k"])[0], args.model
    if not args.auto and (dataset, model) not in SEQ:
        ap.error(f"--model {model}: benchmarks/sasrec.py has no frozen config for it on {dataset}; use --auto")
    variants = [n for n in args.names if n in VARIANTS] or [
        v for v in VARIANTS if model == "sasrec-text" or not needs_item_text(v)]
    rows = []
    for seed in (int(x) for x in args.seeds.split(",")):
        for variant in variants:
            row = record(dataset, variant, seed, args.minutes, args.auto, model)
            rows.append(row)
            print(json.dumps(row), flush=True)
            append_jsonl(args.jsonl, row)
    print(f"\n### augmentation ablation, {dataset}\nmachine: {machine()}\n")
    print(table(rows))


if __name__ == "__main__":
    main()
