"""Fuzzing the service: Schemathesis against the OpenAPI schema of a running `lmrec serve`.

Generates requests from the schema (coverage and fuzzing phases: valid and invalid bodies, paths
and queries) and checks that no response is a 5xx and every response with a documented status
matches its schema. Unknown ids make most path operations answer 404, which is correct and
counted as passed.

    .venv/bin/python benchmarks/fuzz.py --run RUN [--examples 100] [--port 8765]
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

CHECKS = "not_a_server_error,response_schema_conformance"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fuzz(run: Path, examples: int, seed: int = 0, port: int | None = None) -> subprocess.CompletedProcess:
    """Start a server on a scratch event store, run Schemathesis against it, stop the server."""
    port = port or free_port()
    with tempfile.TemporaryDirectory() as tmp:
        server = subprocess.Popen([sys.executable, "-m", "lmrec.cli.main", "serve", "--run", str(run), "--db",
                                   str(Path(tmp) / "events.db"), "--port", str(port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + 60
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.time() > deadline or server.poll() is not None:
                    raise RuntimeError("the server did not start")
                time.sleep(0.2)
            exe = Path(sys.executable).parent / "schemathesis"
            return subprocess.run([str(exe), "run", f"http://127.0.0.1:{port}/openapi.json", "--checks", CHECKS,
                                   "-n", str(examples), "--phases", "examples,coverage,fuzzing", "--seed", str(seed),
                                   "--no-color"], capture_output=True, text=True, timeout=1800)
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:  # still busy with a slow request: it is only a scratch server
                server.kill()
                server.wait()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--examples", type=int, default=100, help="Schemathesis --max-examples per operation")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t0 = time.perf_counter()
    done = fuzz(args.run, args.examples, args.seed)
    print(done.stdout)
    print(f"exit code {done.returncode}; {time.perf_counter() - t0:.0f} s")
    sys.exit(done.returncode)
