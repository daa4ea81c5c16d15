"""Turn an evaluation summary into metrics.json, report.md with PNG plots, and a terminal table."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from rich.table import Table

HEADLINE = ("hr", "ndcg", "mrr", "recall", "precision")
# Plots of what the model learned (lmrec.explain.visuals writes them after training), listed when present.
VISUALS = {"plots/training_curves.png": "Training curves",
           "plots/item_map.png": "Item map",
           "plots/popularity_bias.png": "Popularity bias",
           "plots/attention.png": "Attention over the latest events (sample users)"}


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.4f}"


def bucket_rows(summary: dict, k: int, metrics=("hr", "ndcg")) -> list[tuple[str, str, int, list]]:
    """(group, bucket, n_users, values) rows: overall, then history buckets, then popularity buckets."""
    rows = [("all", "all", summary["n_users"], [summary["overall"].get(f"{m}@{k}") for m in metrics])]
    for group in ("by_history", "by_popularity"):
        for name, vals in summary[group].items():
            rows.append((group.removeprefix("by_"), name, vals["n_users"], [vals.get(f"{m}@{k}") for m in metrics]))
    return rows


def rich_table(summary: dict, k: int = 10, title: str | None = None) -> Table:
    metrics = ("hr", "ndcg", "mrr")
    table = Table(title=title)
    for col in ("group", "bucket", "users", *(f"{m.upper()}@{k}" for m in metrics)):
        table.add_column(col, justify="right" if col not in ("group", "bucket") else "left")
    for group, bucket, n, vals in bucket_rows(summary, k, metrics):
        table.add_row(group, bucket, str(n), *map(_fmt, vals))
    return table


def markdown(summary: dict, *, title: str, context: dict, plots: list[str], head_fraction: float = 0.2,
             visuals: list[str] = ()) -> str:
    ks = sorted({int(key.split("@")[1]) for key in summary["overall"] if "@" in key})
    lines = [f"# {title}", ""]
    lines += [f"- **{key}**: {value}" for key, value in context.items()]
    lines += ["", "Full ranking over the whole catalogue; items in the user's history are excluded "
              "unless the run says otherwise.", "", "## Overall", ""]
    lines += ["| metric | " + " | ".join(f"@{k}" for k in ks) + " |", "|---|" + "---|" * len(ks)]
    for m in (*HEADLINE, "coverage", "novelty"):
        lines.append(f"| {m} | " + " | ".join(_fmt(summary["overall"].get(f"{m}@{k}")) for k in ks) + " |")
    for k in ks:
        lines += ["", f"## By bucket @{k}", "", "| group | bucket | users | HR | NDCG | MRR |", "|---|---|---|---|---|---|"]
        for group, bucket, n, vals in bucket_rows(summary, k, ("hr", "ndcg", "mrr")):
            lines.append(f"| {group} | {bucket} | {n} | " + " | ".join(map(_fmt, vals)) + " |")
    lines += ["", "History buckets count the user's events before the evaluated one; popularity buckets "
              f"are the target item's: head = top {head_fraction:.0%} of items by their number of events before the "
              "evaluated stage (what the model could know), tail = the other items with such events, cold = none.", ""]
    lines += [f"![{Path(p).stem}]({p})" for p in plots]
    if visuals:
        lines += ["", "## What the model learned"]
        for p in visuals:
            lines += ["", f"### {VISUALS[p]}", "", f"![{Path(p).stem}]({p})"]
    if "interest" in summary:
        from lmrec.evaluation.interest import interest_markdown

        lines += interest_markdown(summary["interest"])
    if "interests" in summary:
        from lmrec.explain.interests import interests_markdown

        lines += interests_markdown(summary["interests"])
    return "\n".join(lines) + "\n"


def plot_buckets(summary: dict, path: Path, k: int = 10) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, group, label in ((axes[0], "by_history", "user history length"),
                             (axes[1], "by_popularity", "target item popularity")):
        names = list(summary[group])
        x = range(len(names))
        for offset, metric in ((-0.2, "hr"), (0.2, "ndcg")):
            vals = [summary[group][n].get(f"{metric}@{k}") or 0.0 for n in names]
            ax.bar([i + offset for i in x], vals, width=0.4, label=f"{metric.upper()}@{k}")
        ax.set_xticks(list(x), [f"{n}\n({summary[group][n]['n_users']} users)" for n in names])
        ax.set_title(f"by {label}")
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(run_dir: Path, summary: dict, *, title: str, context: dict, head_fraction: float = 0.2) -> None:
    """metrics.json, report.md and plots/ inside ``run_dir``; each file is replaced atomically."""
    run_dir = Path(run_dir)
    ks = sorted({int(key.split("@")[1]) for key in summary["overall"] if "@" in key})
    plots = []
    for k in ks:
        rel = f"plots/buckets_at_{k}.png"
        tmp = run_dir / f"plots/.buckets_at_{k}.tmp.png"
        plot_buckets(summary, tmp, k)
        os.replace(tmp, run_dir / rel)
        plots.append(rel)
    _atomic_write(run_dir / "metrics.json", json.dumps(summary, indent=2).encode())
    visuals = [p for p in VISUALS if (run_dir / p).exists()]
    _atomic_write(run_dir / "report.md", markdown(summary, title=title, context=context, plots=plots,
                                                  head_fraction=head_fraction, visuals=visuals).encode())
