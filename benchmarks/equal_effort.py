"""Benchmark: the content model against ID-only SASRec on Beauty at equal effort, over seeds.

Equal effort: each side gets two 20-minute fits per seed. The fused content model (frozen config
of benchmarks/text.py: d_model 128, lagged weight search) spends them on the served model and its
lagged judge; the ID-only model on a width search, d_model 64 and 128, the better on validation
being that seed's reference. Ratios are the fused model's over that reference, per seed, then
mean +- std over the seeds. Standard protocol (leave-one-out, full ranking, seen excluded).

    .venv/bin/python benchmarks/equal_effort.py run fused 0 --out runs.jsonl   # one fit, appended
    .venv/bin/python benchmarks/equal_effort.py table runs.jsonl                # the summary
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, run_one  # noqa: E402
from sasrec import CONFIGS as SEQ  # noqa: E402
from text import runs as text_runs  # noqa: E402

RUNS = {
    "id64": ("sasrec", SEQ[("beauty", "sasrec")] | {"d_model": 64, "max_train_minutes": 20}),
    "id128": ("sasrec", SEQ[("beauty", "sasrec")] | {"d_model": 128, "max_train_minutes": 20}),
    "fused": ("sasrec-text", next(c for label, _, c in text_runs("beauty") if "fused" in label)),
}
CELLS = [("overall", "overall", "ndcg@10"), ("<=5", "by_history", "ndcg@10"), ("tail", "by_popularity", "ndcg@10"),
         ("head", "by_popularity", "ndcg@10")]


def cell(summary: dict, group: str, metric: str, name: str) -> float:
    return summary[group][metric] if group == "overall" else summary[group][name][metric]


def run(label: str, seed: int, out: Path) -> None:
    model, config = RUNS[label]
    r = run_one("beauty", model, config, seed=seed)
    st = r["fitted"].train_state
    row = {"label": label, "seed": seed, "valid": st.best_score, "summary": r["summary"], "fit_s": r["fit_s"],
           "notes": r["fitted"].fit_notes(), "machine": machine()}
    with out.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(label, seed, f"valid {st.best_score:.4f}", {n: round(cell(r["summary"], g, m, n), 4) for n, g, m in CELLS})


def table(path: Path) -> None:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    by = {(r["label"], r["seed"]): r for r in rows}
    seeds = sorted({r["seed"] for r in rows if ("fused", r["seed"]) in by})
    print("| seed | ID-only reference (valid d64 / d128) | " + " | ".join(f"{n} fused / ID" for n, *_ in CELLS) + " |")
    print("|---|---|" + "---|" * len(CELLS))
    ratios: dict[str, list[float]] = {n: [] for n, *_ in CELLS}
    values: dict[str, dict[str, list[float]]] = {"fused": {n: [] for n, *_ in CELLS}, "ID": {n: [] for n, *_ in CELLS}}
    for s in seeds:
        a, b = by.get(("id64", s)), by.get(("id128", s))
        if a is None or b is None:
            continue
        ref = a if a["valid"] >= b["valid"] else b
        fused = by[("fused", s)]
        cells = []
        for n, g, m in CELLS:
            f, i = cell(fused["summary"], g, m, n), cell(ref["summary"], g, m, n)
            ratios[n].append(f / i)
            values["fused"][n].append(f)
            values["ID"][n].append(i)
            cells.append(f"{f:.4f} / {i:.4f} = {f / i:.2f}x")
        print(f"| {s} | {ref['label']} ({a['valid']:.4f} / {b['valid']:.4f}) | " + " | ".join(cells) + " |")
    if len(ratios["overall"]) > 1:  # a spread needs two seeds
        def ms(v: list[float]) -> str:
            return f"{np.mean(v):.4f} +- {np.std(v, ddof=1):.4f}"

        print("| mean +- std | | " + " | ".join(f"{ms(values['fused'][n])} / {ms(values['ID'][n])} = "
                                           f"{np.mean(ratios[n]):.2f}x +- {np.std(ratios[n], ddof=1):.2f}"
                                           for n, *_ in CELLS) + " |")


if __name__ == "__main__":
    if sys.argv[1] == "run":
        out = Path(sys.argv[sys.argv.index("--out") + 1])
        run(sys.argv[2], int(sys.argv[3]), out)
    else:
        table(Path(sys.argv[2]))
