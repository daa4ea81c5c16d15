"""Augmentation inside `train`: each method runs end to end through the pipeline (refit included),
is recorded in run.json and the report, and is refused where it does not apply."""

import json

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from lmrec.augment.io import read_virtual_users
from lmrec.cli.main import app
from lmrec.config import parse_config
from lmrec.data import load_dataset
from lmrec.data.splits import TRAIN, make_split
from lmrec.errors import ConfigError
from lmrec.pipeline import train_run
from tests.conftest import make_events

runner = CliRunner()
FAST = {"model": {"d_model": 16, "max_len": 10, "n_heads": 1, "n_layers": 1},
        "training": {"epochs": 3, "batch_size": 16, "time_budget": 1}, "runtime": {"progress": False}}


@pytest.fixture
def events(tmp_path):
    path = tmp_path / "events.csv"
    make_events(n_users=60, n_items=30, length=8).write_csv(path)
    return path


@pytest.mark.parametrize("methods", [["contrastive"], ["prior"], ["gan"], ["contrastive", "prior", "gan"]])
def test_each_method_trains_evaluates_and_refits(tmp_path, events, methods):
    config = parse_config(FAST | {"augmentation": {"methods": methods, "prior": {"max_history": 9, "k": 2},
                                                   "gan": {"users": 15}}})
    lines = []
    result = train_run(events, "sasrec", tmp_path / "run", config, log=lines.append)
    run = json.loads((result.run_dir / "run.json").read_text())
    assert run["augmentation"]["methods"] == methods
    assert any(line.startswith("augmentation: ") for line in lines)
    assert "augmentation" in (result.run_dir / "report.md").read_text()
    if "contrastive" in methods:
        history = json.loads((result.run_dir / "model-eval" / "training.json").read_text())["state"]["history"]
        assert all(h["loss/contrastive"] > 0 for h in history)
    if "prior" in methods:
        assert run["augmentation"]["prior"]["users_augmented"] == 60  # every 6-event training history is short
    if "gan" in methods:
        assert run["augmentation"]["gan"]["virtual_users"] > 0
    assert 0 <= result.summary["overall"]["ndcg@10"] <= 1


def test_contrastive_substitution_for_the_content_model_and_dnn(tmp_path, events):
    from tests.conftest import make_items

    items = tmp_path / "items.csv"
    make_items(30).write_csv(items)
    aug = {"methods": ["contrastive"], "contrastive": {"views": ["substitute", "crop"]}}
    config = parse_config(FAST | {"augmentation": aug, "training": FAST["training"] | {"refit": False}})
    config.model |= {"adapter_hidden": 16}
    result = train_run(events, "sasrec-text", tmp_path / "text", config, items=items, log=lambda *_: None)
    assert json.loads((result.run_dir / "run.json").read_text())["augmentation"]["methods"] == ["contrastive"]
    dnn = parse_config(FAST | {"augmentation": {"methods": ["contrastive"]}, "model": {"max_len": 10, "d_model": 16}})
    train_run(events, "dnn", tmp_path / "dnn", dnn, log=lambda *_: None)
    with pytest.raises(ConfigError, match="substitute.*needs item content|item content"):
        train_run(events, "sasrec", tmp_path / "bad", config.model_copy(update={"model": FAST["model"]}),
                  log=lambda *_: None)


def test_augmentation_is_refused_for_models_without_sequences(tmp_path, events):
    config = parse_config({"augmentation": {"methods": ["contrastive"]}})
    with pytest.raises(ConfigError, match="does not train on event sequences"):
        train_run(events, "itemknn", tmp_path / "run", config, log=lambda *_: None)


def test_unknown_augmentation_keys_are_errors():
    with pytest.raises(ConfigError, match="augmentation.contrastive.wieght"):
        parse_config({"augmentation": {"contrastive": {"wieght": 0.1}}})
    with pytest.raises(ConfigError, match="augmentation.methods"):
        parse_config({"augmentation": {"methods": ["mixup"]}})


def test_recommended_methods_follow_the_profile(tmp_path, events):
    config = parse_config(FAST | {"augmentation": {"methods": "recommended"}})
    lines = []
    train_run(events, "sasrec", tmp_path / "run", config, log=lines.append)
    assert any("augmentation 'recommended' for a" in line for line in lines)


def test_augment_command_writes_virtual_users_that_train_can_mix_in(tmp_path, events):
    out = tmp_path / "virtual.parquet"
    res = runner.invoke(app, ["augment", "--data", str(events), "--method", "gan", "--users", "12", "--out", str(out),
                              "--minutes", "0.1"])
    assert res.exit_code == 0, res.output
    assert "fresh_discriminator_auc" in res.output and "popularity_ks" in res.output
    df = pl.read_parquet(out)
    assert df.columns == ["user_id", "item_id", "timestamp"]
    assert df["user_id"].str.starts_with("virtual-").all() and df["user_id"].n_unique() <= 12
    dataset = load_dataset(events)
    labels = make_split(dataset.interactions, parse_config({}).split)
    train_items = set(np.asarray(dataset.items.ids)[dataset.interactions.item[labels == TRAIN]].tolist())
    assert set(df["item_id"].to_list()) <= train_items
    virtual = read_virtual_users(out, dataset.items)
    assert len(virtual) == df["user_id"].n_unique()
    config = parse_config(FAST | {"augmentation": {"methods": ["gan"], "gan": {"file": str(out), "weight": 1.0}}})
    result = train_run(events, "sasrec", tmp_path / "run", config, log=lambda *_: None)
    run = json.loads((result.run_dir / "run.json").read_text())
    assert run["augmentation"]["gan"]["virtual_users"] == len(virtual)


@pytest.mark.parametrize(("args", "message"), [
    (["--method", "mixup", "--users", "5"], "writes virtual users with: gan"),
    (["--method", "prior", "--users", "5"], "act during training"),
    (["--method", "gan", "--users", "0"], "--users must be a positive"),
])
def test_augment_rejects_bad_arguments_and_writes_nothing(tmp_path, events, args, message):
    out = tmp_path / "virtual.parquet"
    res = runner.invoke(app, ["augment", "--data", str(events), "--out", str(out), *args])
    assert res.exit_code == 2 and message in res.output
    assert not out.exists()


def test_augment_refuses_an_unwritable_output_before_training(tmp_path, events):
    for out, message in ((tmp_path / "missing" / "v.parquet", "does not exist"), (tmp_path / "v.txt", "must end in")):
        res = runner.invoke(app, ["augment", "--data", str(events), "--method", "gan", "--users", "5", "--out", str(out)])
        assert res.exit_code == 2 and message in res.output, res.output
        assert "training the generator" not in res.output
    existing = tmp_path / "v.parquet"
    existing.write_text("keep me")
    res = runner.invoke(app, ["augment", "--data", str(events), "--method", "gan", "--users", "5", "--out", str(existing)])
    assert res.exit_code == 2 and "already exists" in res.output and existing.read_text() == "keep me"


def test_a_virtual_users_file_with_unknown_items_is_a_clear_error(tmp_path, events):
    bad = tmp_path / "virtual.csv"
    pl.DataFrame({"user_id": ["virtual-1"], "item_id": [99999], "timestamp": [1]}).write_csv(bad)
    config = parse_config(FAST | {"augmentation": {"methods": ["gan"], "gan": {"file": str(bad)}}})
    with pytest.raises(Exception, match=r"virtual.csv.*item_id.*unknown item id"):
        train_run(events, "sasrec", tmp_path / "run", config, log=lambda *_: None)
