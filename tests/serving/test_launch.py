"""lmrec.serving.launch: a server that cannot start says why instead of hanging."""

import pytest

from lmrec.serving.launch import free_port, start_server


def test_a_server_that_exits_raises_with_its_log(tmp_path):
    log = tmp_path / "server.log"
    with pytest.raises(RuntimeError, match=r"exited with status 2:\n.*not a run directory") as info:
        start_server(tmp_path / "no-such-run", None, port=free_port(), log=log, timeout_s=60)
    assert "no-such-run" in str(info.value) and "Traceback" not in log.read_text()
