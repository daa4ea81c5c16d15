"""Benchmark: the HTTP service under load on loopback (ML-1M Transformer, exact top-k), and the
recall of the faiss HNSW index against exact top-10.

Trains the ML-1M SASRec architecture of benchmarks/sasrec.py for one epoch (latency does not
depend on the weights' values), starts `lmrec serve` as a real process, then drives it from
this process with a closed-loop load generator: N concurrent clients, each issuing requests
back to back, for a fixed number of requests.

    .venv/bin/python benchmarks/serving.py
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import frozen  # noqa: E402
from sasrec import CONFIGS  # noqa: E402

from lmrec.config import RunConfig  # noqa: E402
from lmrec.pipeline import train_run  # noqa: E402
from lmrec.runs import Run  # noqa: E402
from lmrec.serving.retrieval import ExactRetriever, FaissRetriever  # noqa: E402

CONCURRENCY = 8
REQUESTS = 3000
EVENT_BATCHES, EVENT_BATCH = 100, 100


async def drive(base: str, make_request, n: int, concurrency: int) -> tuple[np.ndarray, float]:
    latencies: list[float] = []
    counter = iter(range(n))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        async def worker():
            for j in counter:
                t0 = time.perf_counter()
                r = await make_request(client, j)
                latencies.append(time.perf_counter() - t0)
                assert r.status_code < 300, r.text
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return np.array(latencies) * 1000, time.perf_counter() - t0


WRK_SCRIPT = """
local users = {}
init = function(args) for line in io.lines(args[1]) do users[#users + 1] = line end end
request = function() return wrk.format("GET", "/recommend/" .. users[math.random(#users)] .. "?k=10") end
"""


def wrk_recommend(base: str, users: list, work: Path) -> None:
    """wrk (C, closed loop) as the load generator: it leaves the cores to the server."""
    (work / "users.txt").write_text("\n".join(map(str, users)))
    (work / "rec.lua").write_text(WRK_SCRIPT)
    for connections in (1, 2, 4):
        out = subprocess.run(["wrk", "-t1", f"-c{connections}", "-d15s", "--latency", "-s", str(work / "rec.lua"),
                              base, "--", str(work / "users.txt")], capture_output=True, text=True, check=True).stdout
        rps = re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)
        pct = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
        print(f"wrk GET /recommend (k=10, {connections} connection(s), 15 s): {float(rps):.0f} req/s, "
              f"p50 {pct['50']}, p99 {pct['99']}", flush=True)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="lmrec-serve-bench-"))
    model_cfg, training = frozen("sasrec", CONFIGS[("ml-1m", "sasrec")] | {"epochs": 1})
    cfg = RunConfig.model_validate({"model": model_cfg, "training": training | {"refit": False},
                                    "runtime": {"progress": False}})
    train_run("ml-1m", "sasrec", work / "run", cfg, log=lambda *_: None)
    run = Run.open(work / "run")
    model, histories = run.load_model(), run.dataset.interactions.sequences()
    exact, _ = ExactRetriever(model).recommend(histories, 10)
    t0 = time.perf_counter()
    approx, _ = FaissRetriever(model).recommend(histories, 10)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact, strict=True)])
    print(f"faiss HNSW vs exact top-10 over {len(histories):,} users: recall@10 {recall:.4f} "
          f"(index + search {time.perf_counter() - t0:.1f}s)")
    users = json.loads((work / "run" / "data" / "users.json").read_text())["ids"]
    items = json.loads((work / "run" / "data" / "items.json").read_text())["ids"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "lmrec.cli.main", "serve", "--run", str(work / "run"),
                               "--db", str(work / "events.db"), "--port", str(port)])
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        rng = np.random.default_rng(0)
        picks = rng.choice(users, REQUESTS)
        if shutil.which("wrk"):
            wrk_recommend(base, users, work)

        async def rec(client, j):
            return await client.get(f"/recommend/{picks[j]}", params={"k": 10})

        asyncio.run(drive(base, rec, 200, CONCURRENCY))  # warm-up
        lat, wall = asyncio.run(drive(base, rec, REQUESTS, CONCURRENCY))
        print(f"GET /recommend (k=10, {CONCURRENCY} concurrent clients, {REQUESTS} requests): "
              f"{REQUESTS / wall:.0f} req/s, p50 {np.percentile(lat, 50):.1f} ms, p99 {np.percentile(lat, 99):.1f} ms")

        async def ingest(client, j):
            batch = [{"user_id": str(rng.choice(users)), "item_id": int(rng.choice(items)), "timestamp": 2_000_000_000}
                     for _ in range(EVENT_BATCH)]
            return await client.post("/events", json={"events": batch})

        lat, wall = asyncio.run(drive(base, ingest, EVENT_BATCHES, 4))
        print(f"POST /events ({EVENT_BATCHES} batches of {EVENT_BATCH}, 4 clients): "
              f"{EVENT_BATCHES * EVENT_BATCH / wall:.0f} events/s, p50 {np.percentile(lat, 50):.1f} ms per batch")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
