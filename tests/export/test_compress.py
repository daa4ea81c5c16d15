"""lmrec compress: quantised storage, magnitude pruning held through a fine-tune, and the
compressed copy as a normal run directory."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from lmrec.cli.main import app
from lmrec.errors import RunError
from lmrec.export.compress import compress_run, item_table_bytes
from lmrec.models.base import Recommender
from lmrec.models.storage import compress_state, from_bf16, restore_state, to_bf16
from lmrec.runs import Run
from lmrec.training.pruning import magnitude_masks
from tests.conftest import tiny_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("compress")
    tiny_run(folder, "sasrec")
    return folder / "run"


def test_bf16_rounds_to_nearest_even():
    x = np.array([1.0, 1 + 2**-8, 1 + 1.5 * 2**-8, -2.0, 0.0], dtype=np.float32)
    np.testing.assert_array_equal(from_bf16(to_bf16(x)), [1.0, 1.0, 1 + 2**-7, -2.0, 0.0])


def test_only_matrices_are_compressed():
    state = {"table": np.ones((100, 16), np.float32), "bias": np.ones(16, np.float32),
             "ids": np.ones((4, 4), np.int64)}
    stored, record = compress_state(state, "int8")
    assert record == {"method": "int8", "arrays": ["table"]}
    assert stored["table"].dtype == np.int8 and stored["bias"].dtype == np.float32
    back = restore_state(stored, record)
    assert set(back) == set(state)
    np.testing.assert_allclose(back["table"], state["table"], atol=1 / 254)


def test_magnitude_masks_reach_the_sparsity_in_every_layer():
    net = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2))
    with torch.no_grad():
        net[0].weight.copy_(torch.arange(20, dtype=torch.float32).view(5, 4) - 10)  # |w|: 10, 9, ..., 0, 1, ..., 9
        net[2].weight.mul_(1000)  # a larger scale must not take the other layer's share
    masks = magnitude_masks(net, 0.25)
    assert set(masks) == {"0.weight", "2.weight"}
    assert int((~masks["0.weight"]).sum()) == 5 and int((~masks["2.weight"]).sum()) == round(0.25 * 10)
    removed = (torch.arange(20).view(5, 4) - 10).abs()[~masks["0.weight"]]
    assert sorted(removed.tolist()) == [0, 1, 1, 2, 2]  # the five smallest magnitudes


@pytest.mark.parametrize("method", ["int8", "bf16"])
def test_quantised_run_is_smaller_and_ranks_alike(run_dir, tmp_path, method):
    record = compress_run(Run.open(run_dir), tmp_path / "c", method, log=lambda *_: None)
    assert record["model"]["bytes_after"] < record["model"]["bytes_before"]
    ratio = item_table_bytes(run_dir / "model") / item_table_bytes(tmp_path / "c" / "model")
    assert ratio > (3 if method == "int8" else 1.9)
    original, compressed = Run.open(run_dir), Run.open(tmp_path / "c")
    assert compressed.meta["compression"]["method"] == method
    a, b = original.recommend(None, 5), compressed.recommend(None, 5)
    assert (a["item_id"] == b["item_id"]).mean() > 0.8
    np.testing.assert_allclose(a["score"].to_numpy(), b["score"].to_numpy(), atol=0.1)
    assert json.loads((tmp_path / "c" / "model" / "config.json").read_text())["storage"]["method"] == method
    assert not (tmp_path / "c" / "metrics.json").exists()  # the source's metrics do not describe the copy


def test_pruned_weights_stay_zero_through_the_fine_tune(run_dir, tmp_path):
    record = compress_run(Run.open(run_dir), tmp_path / "p", "prune", sparsity=0.6, fine_tune_epochs=2,
                          log=lambda *_: None)
    for sub in ("model", "model-eval"):
        assert record[sub]["sparsity"] == pytest.approx(0.6, abs=0.005)
        net = Recommender.load(tmp_path / "p" / sub).net
        linear = [m.weight for m in net.modules() if isinstance(m, nn.Linear)]
        zeros = sum(int((w == 0).sum()) for w in linear) / sum(w.numel() for w in linear)
        assert zeros == pytest.approx(0.6, abs=0.005)
    assert 1 <= record["model-eval"]["fine_tune_epochs"] <= 2
    assert record["model"]["fine_tune_epochs"] == record["model-eval"]["fine_tune_epochs"]


def test_bad_requests_leave_nothing_behind(run_dir, tmp_path):
    with pytest.raises(RunError, match="choose one of int8, bf16, prune"):
        compress_run(Run.open(run_dir), tmp_path / "x", "zip")
    (tmp_path / "taken").mkdir()
    with pytest.raises(RunError, match="already exists"):
        compress_run(Run.open(run_dir), tmp_path / "taken", "int8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_cli_compresses_and_evaluates(run_dir, tmp_path):
    result = CliRunner().invoke(app, ["compress", "--run", str(run_dir), "--method", "int8",
                                      "--out", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "served model 0.03 MB -> 0.01 MB" in text
    assert (tmp_path / "c" / "metrics.json").exists()
    result = CliRunner().invoke(app, ["recommend", "--run", str(tmp_path / "c"), "--output", str(tmp_path / "r.csv")])
    assert result.exit_code == 0, result.output


def test_structured_masks_remove_whole_hidden_units():
    from lmrec.training.pruning import channel_masks

    net = nn.Sequential(nn.Linear(3, 4), nn.GELU(), nn.Linear(4, 2))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0, 0], [0, 5, 0], [0, 0, 0.1], [2, 2, 2]]))
        net[2].weight.fill_(1.0)
    masks = channel_masks(net, 0.5)
    kept = masks["0.weight"].all(dim=1)
    assert kept.tolist() == [False, True, False, True]  # units 0 and 2 have the smallest weights
    assert masks["0.bias"].tolist() == kept.tolist()
    assert masks["2.weight"].all(dim=0).tolist() == kept.tolist()  # their outgoing columns go too


def test_head_masks_remove_whole_heads():
    from lmrec.models.sasrec import Block, SASRecConfig
    from lmrec.training.pruning import head_masks

    block = Block(SASRecConfig(d_model=8, n_heads=2, max_len=5, dropout=0.0, block="pre_ln"))
    with torch.no_grad():
        block.proj.weight[:, :4].mul_(0.01)  # head 0 barely reaches the output
    masks = head_masks(nn.ModuleDict({"b": block}), 0.5)
    rows = masks["b.qkv.weight"].all(dim=1).view(3, 2, 4)
    assert not rows[:, 0].any() and rows[:, 1].all()  # head 0's q, k and v rows go, head 1's stay
    assert masks["b.proj.weight"].all(dim=0).tolist() == [False] * 4 + [True] * 4
    assert head_masks(nn.ModuleDict({"b": block}), 0.4) == {}  # 0.4 x 2 heads rounds down to none


def test_structured_pruning_of_a_run(run_dir, tmp_path):
    record = compress_run(Run.open(run_dir), tmp_path / "s", "prune", sparsity=0.5, structured=True,
                          log=lambda *_: None)
    assert record["structured"] is True
    net = Recommender.load(tmp_path / "s" / "model").net
    for block in net.blocks:
        dead = (block.ffn[0].weight == 0).all(dim=1)
        assert dead.float().mean() == pytest.approx(0.5, abs=0.02)
        assert (block.ffn[3].weight[:, dead] == 0).all()
