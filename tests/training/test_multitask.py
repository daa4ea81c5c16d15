"""Auxiliary heads (like, category, item_category) on the next-item models: losses by hand, labels through the
batches, weights fixed or learned, and the pipeline's errors."""

import math

import numpy as np
import polars as pl
import pytest
import torch
import torch.nn.functional as F

from lmrec.config import RunConfig
from lmrec.data.sequences import Sequences
from lmrec.errors import ConfigError
from lmrec.pipeline import train_run
from lmrec.training.batching import LengthBucketedBatches
from lmrec.training.hooks import StepOutput
from lmrec.training.multitask import MultiTask, MultiTaskConfig, item_categories


class _Net(torch.nn.Module):
    def __init__(self, table):
        super().__init__()
        self.table = table

    def item_table(self):
        return self.table


class _Trainer:
    def __init__(self, table):
        self.module = _Net(table)
        self.optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))])


def _step(d=4, n_items=3):
    torch.manual_seed(0)
    table = torch.randn(n_items + 1, d)
    inputs = torch.tensor([[0, 1, 2]])
    targets = torch.tensor([[1, 2, 3]])
    hidden = torch.randn(1, 3, d)
    labels = torch.tensor([[-1, 1, 0]])
    return StepOutput(torch.tensor(2.0), {"inputs": inputs, "targets": targets, "hidden": hidden, "table": table,
                                          "labels": labels}), table


def test_item_categories_from_a_column():
    info = pl.DataFrame({"item": [1, 2, 3], "genres": ["Drama|Comedy", None, "Comedy"]})
    cats = item_categories(info, MultiTaskConfig(tasks=["category"]))
    np.testing.assert_array_equal(cats, [[1, 1], [0, 0], [1, 0]])  # columns: Comedy, Drama
    with pytest.raises(ConfigError, match="'genres' column"):
        item_categories(info.drop("genres"), MultiTaskConfig(tasks=["category"]))


def test_fixed_weights_losses_by_hand():
    out, table = _step()
    cats = np.array([[1, 0], [1, 1], [0, 1]], dtype=np.float32)
    hook = MultiTask(MultiTaskConfig(tasks=["like", "category"], like_weight=0.3, category_weight=2.0), cats)
    trainer = _Trainer(table)
    hook.wrap(trainer)
    assert len(trainer.optimizer.param_groups) == 2  # the heads train with the model
    # Trained positions: t = 1, 2 (input 0 is padding); their targets are items 1, 2 (tokens 2, 3).
    h, t = out.context["hidden"][0, 1:], torch.tensor([1, 2])
    like = F.binary_cross_entropy_with_logits(
        hook.heads["like"](torch.cat([h, table[t + 1]], -1)).squeeze(-1), torch.tensor([1.0, 0.0]))
    y = torch.tensor([[0.5, 0.5], [0.0, 1.0]])
    cat = -(y * F.log_softmax(hook.heads["category"](h), -1)).sum(1).mean()
    assert hook.extra_loss(None, out).item() == pytest.approx((0.3 * like + 2.0 * cat).item(), rel=1e-5)


def test_item_category_loss_by_hand():
    out, table = _step()
    cats = np.array([[1, 0], [0, 0], [1, 1]], dtype=np.float32)
    hook = MultiTask(MultiTaskConfig(tasks=["item_category"], item_category_weight=0.25), cats)
    hook.wrap(_Trainer(table))
    # The batch's items: inputs 1, 2 and targets 2, 3 are items 0, 1, 2; item 1 has no category.
    logits = hook.heads["item_category"](table[torch.tensor([1, 3])])  # (2, K): items 0 and 2
    y = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    expected = -(y * F.log_softmax(logits, -1)).sum(1).mean()
    assert hook.extra_loss(None, out).item() == pytest.approx(0.25 * expected.item(), rel=1e-5)
    with pytest.raises(ConfigError, match="no categories"):
        MultiTask(MultiTaskConfig(tasks=["item_category"]), np.zeros((3, 0), np.float32))


def test_uncertainty_weights_by_hand():
    out, table = _step()
    hook = MultiTask(MultiTaskConfig(tasks=["like"], weights="uncertainty"))
    hook.wrap(_Trainer(table))
    like = hook.task_losses(out)["like"]
    assert hook.extra_loss(None, out).item() == pytest.approx(like.item())  # s = 0: plain sum
    with torch.no_grad():
        hook.log_vars[:] = torch.tensor([0.5, -1.0])
    expected = (math.exp(-0.5) - 1) * 2.0 + 0.5 + math.exp(1.0) * like.item() - 1.0
    assert hook.extra_loss(None, out).item() == pytest.approx(expected, rel=1e-5)


def test_labelled_batches_keep_each_label_with_its_item():
    seqs = Sequences.from_lists([[4, 5, 6], [7, 8]])
    labels = Sequences.from_lists([[1, -1, 0], [0, 1]])
    batches = LengthBucketedBatches(seqs, max_len=5, batch_size=8, random_window=False, seed=0, labels=labels)
    tokens, labs = batches(0)[0]
    pairs = {(int(t) - 1, int(la)) for t, la in zip(tokens.flatten(), labs.flatten(), strict=True) if t > 0}
    assert pairs == {(4, 1), (5, -1), (6, 0), (7, 0), (8, 1)}
    assert (labs[tokens == 0] == -1).all()


def _config(**multitask):
    return RunConfig.model_validate({
        "data": {"like_threshold": 4}, "multitask": multitask,
        "model": {"d_model": 16, "max_len": 10, "n_heads": 2, "n_layers": 1},
        "training": {"epochs": 3, "batch_size": 16}, "runtime": {"progress": False}})


def test_sasrec_trains_with_every_head_and_reports_them(tmp_path, events_csv, items_csv):
    pl.read_csv(items_csv).with_columns(genres=pl.col("category")).write_csv(tmp_path / "items.csv")
    lines = []
    res = train_run(events_csv, "sasrec", tmp_path / "run",
                    _config(tasks=["like", "category", "item_category"], weights="uncertainty"),
                    items=tmp_path / "items.csv", log=lines.append)
    assert any("multitask: next-item + like, category, item_category" in line for line in lines)
    from lmrec.runs import Run

    history = Run.open(res.run_dir).load_model("eval").train_state.history
    assert {"task/like", "task/category", "task/item_category", "weight/next-item", "weight/item_category"} <= \
        set(history[-1])


def test_multitask_errors_are_clear(tmp_path, events_csv):
    pop = _config(tasks=["like"])
    pop.model = {}
    with pytest.raises(ConfigError, match="no next-item training"):
        train_run(events_csv, "pop", tmp_path / "a", pop, log=lambda *_: None)
    cfg = _config(tasks=["like"])
    cfg.data.like_threshold = None
    with pytest.raises(ConfigError, match="like_threshold"):
        train_run(events_csv, "sasrec", tmp_path / "b", cfg, log=lambda *_: None)
    with pytest.raises(ConfigError, match="category"):
        train_run(events_csv, "sasrec", tmp_path / "c", _config(tasks=["category"]), log=lambda *_: None)
