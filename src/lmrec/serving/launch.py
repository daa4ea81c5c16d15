"""Run ``lmrec serve`` as a child process and wait until it answers: for scripts, notebooks,
load tests and the test suite, which all need a real server on a free port.

    proc, base = start_server("runs/ml1m", "events.db", "--workers", "2")
    try:
        httpx.get(f"{base}/recommend/42")
    finally:
        stop_server(proc)
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (free when asked; take it soon)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(run: str | Path, db: str | Path | None = None, *extra: str, port: int | None = None,
                 log: Path | None = None, cafile: Path | None = None, timeout_s: float = 60.0
                 ) -> tuple[subprocess.Popen, str]:
    """Start ``lmrec serve --run RUN [--db DB] --port PORT EXTRA...``; return the process and its
    base URL once ``GET /health`` answers 200. ``log``: the server's output is appended there (else
    discarded); ``cafile``: the server speaks HTTPS with a certificate this CA file verifies. A
    server that exits or does not answer within ``timeout_s`` raises RuntimeError (with its log)."""
    port = port or free_port()
    cmd = [sys.executable, "-m", "lmrec.cli.main", "serve", "--run", str(run), "--port", str(port),
           *(["--db", str(db)] if db is not None else []), *extra]
    out = log.open("ab") if log else subprocess.DEVNULL
    try:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    finally:
        if log:
            out.close()
    base = f"{'https' if cafile else 'http'}://127.0.0.1:{port}"
    verify = ssl.create_default_context(cafile=str(cafile)) if cafile else True
    deadline = time.time() + timeout_s
    while time.time() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{base}/health", timeout=1, verify=verify).status_code == 200:
                return proc, base
        except httpx.TransportError:
            time.sleep(0.2)
    exited = proc.poll()
    stop_server(proc)
    why = f"did not answer within {timeout_s:g} s" if exited is None else f"exited with status {exited}"
    raise RuntimeError(f"`{' '.join(cmd)}` {why}" + (f":\n{log.read_text()[-4000:]}" if log else ""))


def stop_server(proc: subprocess.Popen, timeout_s: float = 30.0) -> None:
    """SIGTERM (a graceful shutdown), then SIGKILL if it is still busy after ``timeout_s``."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
