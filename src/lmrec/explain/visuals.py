"""Plots of what a trained run learned, for its report: training curves, an item map, popularity
bias, attention over recent events. Each is written only when the run has what it needs."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl

from lmrec.data.splits import TEST, eval_set
from lmrec.models.base import AttendsToHistory, Recommender
from lmrec.runs import Run

CATEGORY_COLUMNS = ("genres", "category", "categories")
MAP_CATEGORIES = 8  # most common categories coloured on the item map, the rest grey


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, path)
    _pyplot().close(fig)


def write_visuals(run: Run) -> list[str]:
    """Write the plots this run supports into ``plots/``; their paths relative to the run."""
    model = run.load_model("eval")
    served = run.load_model()
    written = []
    for name, draw in (("training_curves", lambda p: training_curves(model, p)),
                       ("item_map", lambda p: item_map(served, run, p)),
                       ("popularity_bias", lambda p: popularity_bias(model, run, p)),
                       ("attention", lambda p: attention_heatmap(model, run, p))):
        path = run.path / "plots" / f"{name}.png"
        if draw(path):
            written.append(f"plots/{name}.png")
    return written


def training_curves(model: Recommender, path: Path) -> bool:
    st = model.train_state
    if st is None or not st.history:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    epochs = [h["epoch"] for h in st.history]
    ax.plot(epochs, [h["loss"] for h in st.history], color="tab:blue", label="training loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss", color="tab:blue")
    valid = [(h["epoch"], h["valid"]) for h in st.history if h.get("valid") is not None]
    if valid:
        ax2 = ax.twinx()
        ax2.plot(*zip(*valid, strict=True), "o-", color="tab:orange", label="validation")
        ax2.set_ylabel("validation " + ("AUC" if model.task == "interest" else "NDCG@10"), color="tab:orange")
        ax2.axvline(st.best_epoch, color="grey", ls=":", lw=1)
    ax.set_title("training curves (dotted: the best epoch, whose weights were kept)")
    fig.tight_layout()
    _save(fig, path)
    return True


def item_categories(info: pl.DataFrame | None, n_items: int) -> list[str] | None:
    """Each item's first category from the items file, if it has a category column."""
    if info is None:
        return None
    column = next((c for c in CATEGORY_COLUMNS if c in info.columns), None)
    if column is None:
        return None
    return [str(v).split("|")[0].strip() if v is not None else "" for v in info[column].to_list()[:n_items]]


def item_map(model: Recommender, run: Run, path: Path) -> bool:
    """2-D PCA of the model's item vectors, coloured by popularity and by category when known."""
    xy = _map_coordinates(model)
    if xy is None:
        return False
    counts = run.dataset.interactions.item_counts()[: len(xy)]
    cats = item_categories(run.dataset.item_info, len(xy))
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2 if cats else 1, figsize=(12 if cats else 6.5, 5.5), squeeze=False)
    sc = axes[0, 0].scatter(xy[:, 0], xy[:, 1], c=np.log10(counts + 1), s=4, cmap="viridis")
    fig.colorbar(sc, ax=axes[0, 0], label="log10(training events + 1)")
    axes[0, 0].set_title("item map (PCA of item vectors), by popularity")
    if cats:
        top = [c for c, _ in Counter(c for c in cats if c).most_common(MAP_CATEGORIES)]
        ax = axes[0, 1]
        other = np.array([c not in top for c in cats])
        ax.scatter(xy[other, 0], xy[other, 1], s=3, color="lightgrey", label="other")
        for j, c in enumerate(top):
            sel = np.array([x == c for x in cats])
            ax.scatter(xy[sel, 0], xy[sel, 1], s=4, color=plt.get_cmap("tab10")(j), label=c)
        ax.legend(markerscale=3, fontsize=7, loc="best")
        ax.set_title("by first category")
    fig.tight_layout()
    _save(fig, path)
    return True


def popularity_bias(model: Recommender, run: Run, path: Path, k: int = 10) -> bool:
    """Share of the test top-k going to each popularity decile of items vs its share of events."""
    inter = run.dataset.interactions
    es = eval_set(inter, run.labels, TEST)
    if len(es.users) == 0:
        return False
    before = inter.subset(run.labels < TEST)
    counts = before.item_counts()
    top, _ = model.recommend(es.histories, k)
    recommended = np.bincount(top[top >= 0], minlength=inter.n_items)
    order = np.argsort(-counts, kind="stable")
    deciles = np.array_split(order, 10)
    event_share = [counts[d].sum() / max(1, counts.sum()) for d in deciles]
    rec_share = [recommended[d].sum() / max(1, recommended.sum()) for d in deciles]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    x = np.arange(10)
    ax.bar(x - 0.2, event_share, width=0.4, label="share of the events before the test targets")
    ax.bar(x + 0.2, rec_share, width=0.4, label=f"share of test top-{k} recommendations")
    ax.set_xticks(x, [f"{10 * j}-{10 * (j + 1)}%" for j in range(10)], fontsize=7)
    ax.set_xlabel("items by popularity (most popular first)")
    ax.set_title(f"popularity bias: {rec_share[0]:.0%} of recommendations go to the top 10% of items")
    ax.legend()
    fig.tight_layout()
    _save(fig, path)
    return True


def attention_heatmap(model: Recommender, run: Run, path: Path, users: int = 8, events: int = 20) -> bool:
    """The last layer's attention of the latest position over the last events, for sample users."""
    if not isinstance(model, AttendsToHistory):
        return False
    es = eval_set(run.dataset.interactions, run.labels, TEST)
    lengths = es.histories.lengths()
    events = min(events, int(lengths.max(initial=0)))  # short histories: as many events as they have
    rows = np.flatnonzero(lengths >= events)[:users]
    if events < 2:
        return False
    weights = model.history_attention(es.histories.take(rows))
    grid = np.stack([w[-events:] for w in weights])  # (U, events), oldest first
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(rows) + 1.5))
    im = ax.imshow(grid, aspect="auto", cmap="magma")
    ax.set_xticks(range(events), [str(j - events) for j in range(events)], fontsize=7)
    ax.set_yticks(range(len(rows)), [str(u) for u in run.dataset.users.decode(es.users[rows])], fontsize=7)
    ax.set_xlabel("event (-1: the latest)")
    ax.set_ylabel("user")
    fig.colorbar(im, ax=ax, label="attention")
    ax.set_title("where the Transformer looks: last layer, latest position")
    fig.tight_layout()
    _save(fig, path)
    return True


def _map_coordinates(model: Recommender) -> np.ndarray | None:
    try:
        vectors = model._item_vectors()
    except NotImplementedError:
        return None
    if vectors is None or vectors.shape[0] < 3:
        return None
    v = vectors.float().numpy()
    v = v - v.mean(0)
    _, _, vt = np.linalg.svd(v, full_matrices=False)
    return v @ vt[:2].T  # (n_items, 2)


def user_map(run: Run, user_id, path: Path, k: int = 10) -> bool:
    """A user on the item map: their history, their top-k, and their interest atoms (when the run
    has codes) named by their top titles at the centre of their top items."""
    model = run.load_model()
    xy = _map_coordinates(model)
    if xy is None:
        return False
    users = run.dataset.users.lookup([user_id], what="user id")
    history = run.histories(users)
    top, _ = model.recommend(history, k)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 6.5))
    ax.scatter(xy[:, 0], xy[:, 1], s=2, color="lightgrey", label="catalogue")
    h = history[0]
    ax.scatter(xy[h, 0], xy[h, 1], s=10, color="tab:blue", label=f"history ({len(h)} events)")
    rec = top[0][top[0] >= 0]
    ax.scatter(xy[rec, 0], xy[rec, 1], s=60, marker="*", color="tab:red", label=f"top-{k}")
    if (run.path / "interests").exists():
        for a in run.user_interests(user_id)[:6]:
            idx = run.dataset.items.lookup(a["item_ids"][:5], what="item id")
            cx, cy = xy[idx].mean(0)
            ax.annotate(f"atom {a['atom']} ({a['share']:.0%}): {a['titles'][0] or a['item_ids'][0]}"[:60], (cx, cy),
                        fontsize=7, bbox={"boxstyle": "round", "fc": "lightyellow", "alpha": 0.8})
    ax.legend(fontsize=8, loc="best")
    ax.set_title(f"user {user_id} on the item map (PCA of item vectors)")
    fig.tight_layout()
    _save(fig, path)
    return True
