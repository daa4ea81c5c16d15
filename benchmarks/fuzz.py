"""Fuzzing the service: Schemathesis against the OpenAPI schema of a running `lmrec serve`.

Generates requests from the schema (coverage and fuzzing phases: valid and invalid bodies, paths
and queries) and checks that no response is a 5xx and every response with a documented status
matches its schema. Unknown ids make most path operations answer 404, which is correct and
counted as passed.

    .venv/bin/python benchmarks/fuzz.py --run RUN [--examples 100] [--port 8765]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lmrec.serving.launch import start_server, stop_server

CHECKS = "not_a_server_error,response_schema_conformance"


def fuzz(run: Path, examples: int, seed: int = 0, port: int | None = None) -> subprocess.CompletedProcess:
    """Start a server on a scratch event store, run Schemathesis against it, stop the server."""
    with tempfile.TemporaryDirectory() as tmp:
        server, base = start_server(run, Path(tmp) / "events.db", port=port)
        try:
            exe = Path(sys.executable).parent / "schemathesis"
            return subprocess.run([str(exe), "run", f"{base}/openapi.json", "--checks", CHECKS,
                                   "-n", str(examples), "--phases", "examples,coverage,fuzzing", "--seed", str(seed),
                                   "--no-color"], capture_output=True, text=True, timeout=1800)
        finally:
            stop_server(server)  # a scratch server still busy with a slow request is killed after 30 s


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
