"""The real server process on a free loopback port: end to end, and crash durability."""

import os
import signal
import subprocess
import time

import httpx
import pytest

from lmrec.serving.launch import free_port, start_server


def start(itemknn_run, db, port, *extra):
    """The service on ``port`` with API key "k", its output in a log beside the run."""
    return start_server(itemknn_run, db, "--api-key", "k", *extra, port=port,
                        log=itemknn_run.parent / f"server-{port}.log")[0]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_acknowledged_events_survive_a_hard_kill(itemknn_run, tmp_path, request, backend):
    db = tmp_path / "events.db" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start(itemknn_run, db, port)
    try:
        acked = 0
        for j in range(20):
            batch = {"events": [{"user_id": f"new{j}", "item_id": 100 + (j + n) % 20, "timestamp": 10 + n}
                                for n in range(5)]}
            r = httpx.post(f"{base}/events", json=batch, headers={"X-API-Key": "k"}, timeout=10)
            assert r.status_code == 201
            acked += r.json()["accepted"]
        before = httpx.get(f"{base}/recommend/new3?k=5", timeout=10).json()
        assert before["source"] == "model"
    finally:
        proc.send_signal(signal.SIGKILL)  # no shutdown hooks, no flush: only what was committed survives
        proc.wait()
    proc = start(itemknn_run, db, port)
    try:
        health = httpx.get(f"{base}/health", timeout=10).json()
        assert health["events_stored"] == acked == 100
        after = httpx.get(f"{base}/recommend/new3?k=5", timeout=10).json()
        assert after == before  # the replayed history gives the same recommendations
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def post_events(base: str, user: str, n: int) -> None:
    batch = {"events": [{"user_id": user, "item_id": 100 + j, "timestamp": 10 + j} for j in range(n)]}
    r = httpx.post(f"{base}/events", json=batch, headers={"X-API-Key": "k"}, timeout=10)
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_replicas_sharing_a_store_answer_from_each_others_writes(itemknn_run, tmp_path, request, backend):
    db = tmp_path / "events.db" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    ports = (free_port(), free_port())
    a, b = (f"http://127.0.0.1:{p}" for p in ports)
    procs = [start(itemknn_run, db, p) for p in ports]
    try:
        post_events(a, "walker", 3)
        assert httpx.get(f"{b}/users/walker", timeout=10).json()["events"] == 3  # written by the other process
        post_events(b, "walker", 2)
        assert httpx.get(f"{a}/users/walker", timeout=10).json()["events"] == 5
        assert httpx.get(f"{a}/recommend/walker?k=3", timeout=10).json()["source"] == "model"
        r = httpx.delete(f"{b}/users/walker", headers={"X-API-Key": "k"}, timeout=10)
        assert r.status_code == 200 and r.json()["events_deleted"] == 5
        assert httpx.get(f"{a}/users/walker", timeout=10).status_code == 404  # forgotten everywhere
        assert httpx.get(f"{a}/recommend/walker?k=3", timeout=10).json()["source"] == "popularity"
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)


def test_workers_share_one_store(itemknn_run, tmp_path):
    db, port = tmp_path / "events.db", free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start(itemknn_run, db, port, "--workers", "2")
    try:
        for n in range(1, 6):  # each read is a new connection: either worker may answer it
            post_events(base, f"user-{n}", n)
            assert [httpx.get(f"{base}/users/user-{n}", timeout=10).json()["events"] for _ in range(4)] == [n] * 4
        workers = subprocess.run(["pgrep", "-P", str(proc.pid), "-f", "spawn_main"], capture_output=True,
                                 text=True).stdout.split()
        assert len(workers) == 2
        os.kill(int(workers[0]), signal.SIGKILL)  # one worker dies after acknowledging writes
        deadline = time.time() + 60
        while time.time() < deadline:  # the survivor answers meanwhile; uvicorn starts a replacement
            try:
                health = httpx.get(f"{base}/health", timeout=5).json()
            except httpx.TransportError:
                continue
            if health["events_stored"] == 15:
                break
        assert health["events_stored"] == 15  # 1 + 2 + ... + 5: nothing acknowledged was lost
        assert [httpx.get(f"{base}/users/user-5", timeout=10).json()["events"] for _ in range(4)] == [5] * 4
    finally:
        proc.terminate()
        proc.wait(timeout=30)
