"""The shipped scenario configs stay valid as the config schema changes."""

from pathlib import Path

import pytest

from lmrec.config import load_config

SCENARIOS = sorted((Path(__file__).parent.parent / "scenarios").glob("*.toml"))


def test_there_are_scenarios():
    assert {p.stem for p in SCENARIOS} >= {"ecommerce-beauty", "movies-ml1m", "music-lastfm"}


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_scenario_config_is_valid(path):
    config = load_config(path)
    assert config.training.time_budget != "auto"
    assert "lmrec train --data" in path.read_text()  # each file says how to run it
