"""Benchmark: the HTTP service under load on loopback (ML-1M Transformer, exact top-k), and the
recall of the faiss HNSW index against exact top-10.

Trains the ML-1M SASRec architecture of benchmarks/sasrec.py for one epoch (latency does not
depend on the weights' values), starts `lmrec serve` as a real process, then drives it from
this process: wrk (closed loop, C) on `GET /recommend`, and batches of `POST /events` from
asyncio clients. Each setup is a number of worker processes and an event store: SQLite (WAL,
synchronous=FULL) or a PostgreSQL server this script starts (Debian's packages, fsync on).

    .venv/bin/python benchmarks/serving.py [--setups 1:sqlite,2:sqlite,1:postgresql,2:postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import re
import shutil
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
from lmrec.serving.launch import start_server, stop_server  # noqa: E402
from lmrec.serving.retrieval import ExactRetriever, FaissRetriever  # noqa: E402

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


def connection_split(port: int) -> str:
    """How many of the established connections to ``port`` each server process holds ("2+2"): a
    keep-alive connection stays with the worker that accepted it, so this decides the rate."""
    if shutil.which("ss") is None:
        return "?"
    out = subprocess.run(["ss", "-tnpH", "state", "established", f"( sport = :{port} )"], capture_output=True,
                         text=True).stdout
    counts = sorted(collections.Counter(re.findall(r"pid=(\d+)", out)).values(), reverse=True)
    return "+".join(map(str, counts)) or "?"


def wrk_recommend(base: str, users: list, work: Path, connections: int, label: str) -> dict:
    """wrk (C, closed loop) as the load generator: it leaves the cores to the server."""
    (work / "users.txt").write_text("\n".join(map(str, users)))
    (work / "rec.lua").write_text(WRK_SCRIPT)
    wrk = subprocess.Popen(["wrk", "-t1", f"-c{connections}", "-d15s", "--latency", "-s", str(work / "rec.lua"),
                            base, "--", str(work / "users.txt")], stdout=subprocess.PIPE, text=True)
    time.sleep(3)
    split = connection_split(int(base.rsplit(":", 1)[1]))
    out, _ = wrk.communicate()
    if wrk.returncode:
        raise SystemExit(f"wrk failed with status {wrk.returncode}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    pct = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    row = {"setup": label, "load": f"wrk GET /recommend, {connections} connection(s), 15 s", "split": split, "rps": rps,
           "p50": pct["50"], "p99": pct["99"], "errors": int(errors.group(1)) if errors else 0}
    print(row, flush=True)
    return row


def start(run_dir: Path, db: str, workers: int) -> tuple[subprocess.Popen, str]:
    server, base = start_server(run_dir, db, "--workers", str(workers))
    time.sleep(3 if workers > 1 else 0)  # every worker up, not only the first that answered
    return server, base


def postgres():
    """A PostgreSQL server for the benchmark, durable settings (fsync on, synchronous_commit on)."""
    sys.path.insert(0, str(Path(__file__).parents[1]))
    from tests.postgres import PostgresServer

    server = PostgresServer()
    server.fsync = True
    reason = server.start()
    if reason:
        raise SystemExit(f"PostgreSQL: {reason}")
    return server


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--setups", default="1:sqlite,2:sqlite,1:postgresql,2:postgresql",
                    help="WORKERS:STORE, comma-separated")
    ap.add_argument("--connections", default="4", help="wrk connections, comma-separated")
    ap.add_argument("--repeats", type=int, default=1, help="wrk runs per connection count (each opens its "
                    "connections afresh, so each gets its own split over the workers)")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("serving.py needs the wrk load generator: apt-get install wrk")
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
    pg = postgres() if "postgresql" in args.setups else None
    rows = []
    try:
        for j, setup in enumerate(args.setups.split(",")):
            workers, store = setup.split(":")
            db = str(work / f"events-{j}.db") if store == "sqlite" else pg.create_database(f"bench{j}")
            label = f"{workers} worker(s), {store}"
            server, base = start(work / "run", db, int(workers))
            try:
                for c in args.connections.split(","):
                    rows += [wrk_recommend(base, users, work, int(c), label) for _ in range(args.repeats)]
                rng = np.random.default_rng(0)
                batches = [[{"user_id": str(u), "item_id": int(i), "timestamp": 2_000_000_000}
                            for u, i in zip(rng.choice(users, EVENT_BATCH), rng.choice(items, EVENT_BATCH),
                                            strict=True)] for _ in range(EVENT_BATCHES)]

                async def ingest(client, j, batches=batches):
                    return await client.post("/events", json={"events": batches[j]})

                lat, wall = asyncio.run(drive(base, ingest, EVENT_BATCHES, 4))
                row = {"setup": label, "load": f"POST /events, {EVENT_BATCHES} batches of {EVENT_BATCH}, 4 clients",
                       "events_per_s": EVENT_BATCHES * EVENT_BATCH / wall, "p50": f"{np.percentile(lat, 50):.1f}ms"}
                print(row, flush=True)
                rows.append(row)
            finally:
                stop_server(server)
    finally:
        if pg is not None:
            pg.remove()
    print(table(rows))


def table(rows: list[dict]) -> str:
    out = ["| setup | load | connections per worker | throughput | p50 | p99 |", "|---|---|---|---|---|---|"]
    for r in rows:
        rate = f"{r['rps']:.0f} req/s" if "rps" in r else f"{r['events_per_s']:,.0f} events/s"
        out.append(f"| {r['setup']} | {r['load']} | {r.get('split', '')} | {rate} | {r['p50']} | {r.get('p99', '')} |")
    return "\n".join(out)


if __name__ == "__main__":
    main()
