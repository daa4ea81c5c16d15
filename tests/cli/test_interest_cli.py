"""`train --model interest`, `predict` one user and in bulk, and their errors."""

import json
import re

import polars as pl
import pytest
from typer.testing import CliRunner

from lmrec.cli.main import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def interest_run(tmp_path_factory):
    from tests.conftest import make_events, make_items

    folder = tmp_path_factory.mktemp("interest")
    make_events().write_csv(folder / "events.csv")
    make_items().write_csv(folder / "items.csv")
    config = folder / "config.json"
    config.write_text(json.dumps({"model": {"d_model": 16, "max_len": 10}, "training": {"epochs": 3}}))
    res = invoke("train", "--data", folder / "events.csv", "--items", folder / "items.csv", "--model", "interest",
                 "--like-threshold", 4,
                 "--config", config, "--out", folder / "run")
    assert res.exit_code == 0, res.output
    return folder / "run", res.output


def test_train_reports_interest_metrics_next_to_the_baselines(interest_run):
    run, output = interest_run
    assert "labels:" in output and "interest prediction on 30 held-out labelled events" in output
    assert "best validation AUC" in output
    metrics = json.loads((run / "metrics.json").read_text())["interest"]
    assert set(metrics["baselines"]) == {"majority", "user-mean", "item-mean", "biased-mf"}
    assert {"accuracy", "auc", "log_loss"} <= set(metrics["model"])
    assert "## Interest prediction" in (run / "report.md").read_text()
    like = pl.read_parquet(run / "data" / "events.parquet")["like"]
    assert set(like.unique().to_list()) == {0, 1}  # ratings 1..5: >= 4 like


def test_predict_one_user(interest_run):
    run, _ = interest_run
    res = invoke("predict", "--run", run, "--user", "u0", "--item", 110, "--item", 999)
    assert res.exit_code == 0, res.output
    rows = [line for line in res.output.splitlines() if "110" in line or "999" in line]
    assert "Item number 10" in rows[0] and re.search(r"\b0\.\d{4}\b", rows[0])  # title and probability
    assert "unknown item_id '999'" in rows[1]


def test_predict_pairs_answers_or_rejects_every_row(interest_run, tmp_path):
    run, _ = interest_run
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("user_id,item_id\nu0,110\nu1,105\nnobody,110\nu2,999\nu0,111\n")
    out = tmp_path / "preds.csv"
    res = invoke("predict", "--run", run, "--pairs", pairs, "--output", out)
    assert res.exit_code == 0, res.output
    preds = pl.read_csv(out)
    assert preds.columns == ["user_id", "item_id", "probability"]
    assert preds["user_id"].to_list() == ["u0", "u1", "u0"] and preds["item_id"].to_list() == [110, 105, 111]
    assert preds["probability"].is_between(0, 1).all()
    rejected = pl.read_csv(tmp_path / "preds.rejected.csv")
    assert rejected["row"].to_list() == [3, 4]
    assert "unknown user_id" in rejected["reason"][0] and "unknown item_id" in rejected["reason"][1]
    # Bulk and single predictions agree.
    single = invoke("predict", "--run", run, "--user", "u0", "--item", 111)
    assert f"{preds['probability'][2]:.4f}" in single.output


def test_predict_errors_are_one_line(interest_run, tmp_path):
    run, _ = interest_run
    bad = tmp_path / "bad.csv"
    bad.write_text("user,item\nu0,110\n")
    res = invoke("predict", "--run", run, "--pairs", bad, "--output", tmp_path / "o.csv")
    assert res.exit_code != 0 and "column 'user_id'" in res.output and "Traceback" not in res.output
    res = invoke("predict", "--run", run)
    assert res.exit_code != 0 and "--user" in res.output


def test_interest_needs_labels_and_other_runs_do_not_predict(tmp_path, events_csv):
    res = invoke("train", "--data", events_csv, "--model", "interest", "--out", tmp_path / "r")
    assert res.exit_code != 0 and "like_threshold" in res.output and "Traceback" not in res.output
    res = invoke("train", "--data", events_csv, "--model", "pop", "--out", tmp_path / "pop")
    assert res.exit_code == 0, res.output
    res = invoke("predict", "--run", tmp_path / "pop", "--user", "u0", "--item", 110)
    assert res.exit_code != 0 and "--model interest" in res.output
