"""Schemathesis against the real server's OpenAPI schema: no 5xx, every documented response
matches its schema (a small run; benchmarks/fuzz.py makes the full one)."""

import re
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))


@pytest.mark.skipif(shutil.which("schemathesis", path=str(Path(sys.executable).parent)) is None,
                    reason="fuzzing needs schemathesis: pip install schemathesis (the test extra has it)")
def test_generated_requests_find_no_server_error(tmp_path):
    from fuzz import fuzz

    from tests.conftest import tiny_run

    tiny_run(tmp_path, "sasrec")
    done = fuzz(tmp_path / "run", examples=5, seed=1)
    assert done.returncode == 0, done.stdout[-4000:]
    cases = re.search(r"(\d+) generated, (\d+) passed", done.stdout)
    assert cases and int(cases.group(1)) >= 100 and cases.group(1) == cases.group(2), done.stdout[-2000:]
