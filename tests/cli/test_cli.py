"""The command-line contract: names and options that outside checks call."""

import json

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from lmrec.cli.main import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def run_dir(tmp_path, events_csv, items_csv):
    out = tmp_path / "run"
    res = invoke("train", "--data", events_csv, "--items", items_csv, "--model", "itemknn", "--out", out)
    assert res.exit_code == 0, res.output
    return out


def test_train_writes_a_complete_run(run_dir):
    assert {p.name for p in run_dir.iterdir()} >= {"run.json", "data", "model", "model-eval", "metrics.json",
                                                   "report.md", "plots"}
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["model"] == "itemknn" and meta["config"]["model"] == {"neighbors": 100, "shrink": 10.0}
    assert json.loads((run_dir / "model" / "config.json").read_text())["model"] == "itemknn"


def test_recommend_predicts_next_event_with_original_ids(run_dir, tmp_path, events_csv):
    out = tmp_path / "recs.csv"
    res = invoke("recommend", "--run", run_dir, "--users", "all", "--k", 3, "--output", out)
    assert res.exit_code == 0, res.output
    recs = pl.read_csv(out)
    assert recs.columns == ["user_id", "rank", "item_id", "score"]
    assert recs["user_id"].n_unique() == 30 and recs.height == 90
    events = pl.read_csv(events_csv)
    seen = set(zip(events["user_id"], events["item_id"], strict=True))
    assert not any((u, i) in seen for u, i in zip(recs["user_id"], recs["item_id"], strict=True))
    # Users walk a cycle of 20 items from 100 + u, 8 steps: the next item after the last one
    # (100 + (u + 8) % 20) co-occurs with it most, so item-kNN ranks it in the top 3.
    top = recs.filter(pl.col("rank") <= 3)
    expected = {(f"u{u}", 100 + (u + 8) % 20) for u in range(30)}
    found = set(zip(top["user_id"], top["item_id"], strict=True)) & expected
    assert len(found) >= 27


def test_recommend_for_a_users_file(run_dir, tmp_path):
    users = tmp_path / "users.txt"
    users.write_text("u3\nu7\n")
    out = tmp_path / "recs.csv"
    assert invoke("recommend", "--run", run_dir, "--users", users, "--output", out).exit_code == 0
    assert set(pl.read_csv(out)["user_id"]) == {"u3", "u7"}
    users.write_text("u3\nnobody\n")
    res = invoke("recommend", "--run", run_dir, "--users", users, "--output", out)
    assert res.exit_code == 2 and "nobody" in res.output


def test_evaluate_prints_bucket_table_and_writes_metrics(run_dir):
    (run_dir / "metrics.json").unlink()
    res = invoke("evaluate", "--run", run_dir)
    assert res.exit_code == 0, res.output
    assert "history" in res.output and "popularity" in res.output and "NDCG@10" in res.output
    assert "ndcg@10" in json.loads((run_dir / "metrics.json").read_text())["overall"]


def test_similar_and_info(run_dir, events_csv):
    res = invoke("similar", "--run", run_dir, "--item", "105", "--k", 3)
    assert res.exit_code == 0 and "Item number 5" in res.output
    assert invoke("similar", "--run", run_dir, "--item", "99999").exit_code == 2
    res = invoke("info", "--data", events_csv)
    assert res.exit_code == 0 and "240" in res.output and "density" in res.output
    assert "last event ties with the one before" in res.output


def test_bad_input_is_a_clear_error_and_keeps_the_old_run(run_dir, tmp_path):
    before = (run_dir / "model" / "weights.safetensors").read_bytes()
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,item_id,timestamp\n1,2,3\n1,3,soon\n")
    res = invoke("train", "--data", bad, "--model", "pop", "--out", run_dir, "--overwrite")
    assert res.exit_code == 2 and "bad.csv" in res.output and "row 2" in res.output
    assert (run_dir / "model" / "weights.safetensors").read_bytes() == before
    assert not [p for p in run_dir.parent.iterdir() if p.name.startswith(".run.tmp")]


def test_existing_run_needs_overwrite(run_dir, events_csv):
    res = invoke("train", "--data", events_csv, "--model", "pop", "--out", run_dir)
    assert res.exit_code == 2 and "--overwrite" in res.output


def test_config_file_is_validated(tmp_path, events_csv):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[model]\nneighbours = 5\n")
    res = invoke("train", "--data", events_csv, "--model", "itemknn", "--out", tmp_path / "r", "--config", cfg)
    assert res.exit_code == 2 and "neighbours" in res.output
    cfg.write_text('[split]\nkind = "temporal"\ntest_quantile = 0.9\n[model]\nneighbors = 5\n[evaluation]\nks = [5]\n')
    res = invoke("train", "--data", events_csv, "--model", "itemknn", "--out", tmp_path / "r", "--config", cfg)
    assert res.exit_code == 0, res.output
    meta = json.loads((tmp_path / "r" / "run.json").read_text())
    assert meta["config"]["split"]["kind"] == "temporal" and meta["config"]["model"]["neighbors"] == 5


def test_unknown_model_lists_the_available_ones(tmp_path, events_csv):
    res = invoke("train", "--data", events_csv, "--model", "nope", "--out", tmp_path / "r")
    assert res.exit_code == 2 and "ease" in res.output


def test_text_model_recommends_and_finds_items_without_events(tmp_path, events_csv):
    items = tmp_path / "items.csv"
    titles = {100 + i: f"Item number {i}" for i in range(20)} | {999: "Item number 5"}  # same text as 105
    pl.DataFrame({"item_id": list(titles), "title": list(titles.values())}).write_csv(items)
    out = tmp_path / "run"
    res = invoke("train", "--data", events_csv, "--items", items, "--model", "text-knn", "--out", out,
                 "--text-cols", "title")
    assert res.exit_code == 0, res.output
    res = invoke("similar", "--run", out, "--item", "105", "--k", 1)
    assert res.exit_code == 0 and "999" in res.output  # the item with no events, found by its text
    recs = tmp_path / "recs.csv"
    assert invoke("recommend", "--run", out, "--output", recs, "--k", 20).exit_code == 0
    assert 999 in pl.read_csv(recs)["item_id"].to_list()


def test_sasrec_text_with_item_vectors_from_the_cli(tmp_path, events_csv):
    items = tmp_path / "items.csv"
    pl.DataFrame({"item_id": [100 + i for i in range(20)], "title": [f"Item {i}" for i in range(20)]}).write_csv(items)
    np.save(tmp_path / "img.npy", np.eye(20, 4, dtype=np.float32))
    (tmp_path / "img.ids.txt").write_text("\n".join(str(100 + i) for i in range(20)))
    cfg = tmp_path / "c.toml"
    cfg.write_text("[model]\nd_model = 16\nmax_len = 8\nadapter_hidden = 8\n[training]\nepochs = 1\n"
                   "[runtime]\nprogress = false\n")
    out = tmp_path / "run"
    res = invoke("train", "--data", events_csv, "--items", items, "--model", "sasrec-text", "--out", out,
                 "--item-vectors", tmp_path / "img.npy", "--config", cfg)
    assert res.exit_code == 0, res.output
    meta = json.loads((out / "run.json").read_text())
    assert meta["config"]["data"]["item_vectors"] == [str(tmp_path / "img.npy")]
    for sub in ("model", "model-eval"):  # saved models describe themselves without pointing at files
        assert str(tmp_path) not in (out / sub / "config.json").read_text() + (out / sub / "training.json").read_text()
    (tmp_path / "img.ids.txt").unlink()  # the served model keeps the vectors: no file needed any more
    assert invoke("similar", "--run", out, "--item", "105", "--k", 3).exit_code == 0
    res = invoke("train", "--data", events_csv, "--items", items, "--model", "sasrec-text", "--out", tmp_path / "r2",
                 "--item-vectors", tmp_path / "img.npy", "--config", cfg)
    assert res.exit_code != 0 and "img.ids.txt" in res.output


def test_train_without_config_prints_the_profile_and_the_settings_it_chose(tmp_path, events_csv):
    out = tmp_path / "run"
    res = invoke("train", "--data", events_csv, "--model", "sasrec", "--out", out, "--time-budget", 0.5)
    assert res.exit_code == 0, res.output
    assert "profile of the training part: 30 users" in res.output and "automatic settings" in res.output
    assert "of 0.5 budgeted minutes" in res.output
    meta = json.loads((out / "run.json").read_text())
    # The run records what "auto" became (a user who sets a value gets exactly it; see below).
    assert meta["config"]["training"]["time_budget"] == 0.5 and meta["config"]["model"]["max_len"] == 20
    assert meta["auto_choices"]["model.dropout"] == meta["config"]["model"]["dropout"] == 0.5  # sparse fixture
    assert json.loads((out / "model" / "config.json").read_text())["config"]["dropout"] == 0.5
    cfg = tmp_path / "c.toml"
    cfg.write_text("[model]\ndropout = 0.3\n[training]\nlr = 0.01\nepochs = 2\n")
    res = invoke("train", "--data", events_csv, "--model", "sasrec", "--out", tmp_path / "r2", "--config", cfg)
    assert res.exit_code == 0, res.output
    meta = json.loads((tmp_path / "r2" / "run.json").read_text())
    assert meta["config"]["model"]["dropout"] == 0.3 and meta["config"]["training"]["lr"] == 0.01
    assert "model.dropout" not in meta["auto_choices"] and "training.lr" not in meta["auto_choices"]


def test_a_training_setting_in_the_model_section_says_where_it_belongs(tmp_path, events_csv):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[model]\nepochs = 3\n")
    res = invoke("train", "--data", events_csv, "--model", "sasrec", "--out", tmp_path / "r", "--config", cfg)
    assert res.exit_code == 2 and "'epochs' is a training setting" in res.output and "[training]" in res.output


def test_popularity_is_an_alias_of_pop(tmp_path, events_csv):
    res = invoke("train", "--data", events_csv, "--model", "popularity", "--out", tmp_path / "r")
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "r" / "model" / "config.json").read_text())["model"] == "pop"
    assert "pop (or popularity)" in invoke("models").output


def test_an_unexpected_error_is_one_line_unless_debug(tmp_path, events_csv, monkeypatch):
    import lmrec.pipeline

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(lmrec.pipeline, "train_run", broken)
    res = invoke("train", "--data", events_csv, "--model", "pop", "--out", tmp_path / "r")
    assert res.exit_code == 1 and "unexpected RuntimeError: disk on fire" in res.output and "--debug" in res.output
    assert "Traceback" not in res.output
    res = invoke("--debug", "train", "--data", events_csv, "--model", "pop", "--out", tmp_path / "r")
    assert isinstance(res.exception, RuntimeError)  # --debug lets the traceback through


def test_data_too_short_for_validation_still_trains(tmp_path):
    events = tmp_path / "short.csv"
    events.write_text("user_id,item_id,timestamp\n" + "".join(f"u{u},{i},{u * 10 + i}\n" for u in range(20)
                                                              for i in range(2)))
    res = invoke("train", "--data", events, "--model", "sasrec", "--out", tmp_path / "r", "--time-budget", 0.3)
    assert res.exit_code == 0, res.output
    assert "no validation targets" in res.output
