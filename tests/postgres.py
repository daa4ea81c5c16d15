"""A real, throwaway PostgreSQL server for the tests (Debian's packages; `make postgres` installs
them), started once per test session on a free loopback port. Not a mock: the store's contract
is checked against the server users run."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from lmrec.serving.launch import free_port


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


class PostgresServer:
    """``start()`` returns None or the reason it cannot run; ``url(db)``; ``stop()``; ``restart()``."""

    def __init__(self) -> None:
        self.dir: Path | None = None
        self.port = free_port()
        self.prefix: list[str] = []
        self.fsync = False  # tests: faster, and a crash of the test server loses nothing anyone needs

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*self.prefix, *args], capture_output=True, text=True, timeout=120)

    def start(self) -> str | None:
        initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
        if not initdb or not pg_ctl:
            return "PostgreSQL is not installed (`make postgres` installs Debian's packages)"
        try:
            import psycopg  # noqa: F401
        except ImportError:
            return "psycopg is not installed (pip install 'lmrec[postgres]')"
        self.pg_ctl = pg_ctl
        # Not under pytest's root-only tmp directory: the server's own user must reach it.
        self.dir = Path(tempfile.mkdtemp(prefix="lmrec-pg-"))
        if os.getuid() == 0:  # PostgreSQL refuses to run as root
            if not shutil.which("runuser"):
                return "running as root without runuser: cannot start PostgreSQL as another user"
            shutil.chown(self.dir, "postgres", "postgres")
            self.prefix = ["runuser", "-u", "postgres", "--"]
        done = self._run(initdb, "-D", str(self.dir / "data"), "-A", "trust", "-U", "lmrec", "--no-sync")
        if done.returncode:
            return f"initdb failed: {done.stderr.strip()[-300:]}"
        return self.restart()

    def restart(self) -> str | None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync={'on' if self.fsync else 'off'}"
        done = self._run(self.pg_ctl, "-D", str(self.dir / "data"), "-o", options, "-l", str(self.dir / "log"),
                         "-w", "start")
        return f"PostgreSQL did not start: {done.stderr.strip()[-300:]}" if done.returncode else None

    def stop(self, mode: str = "fast") -> None:
        self._run(self.pg_ctl, "-D", str(self.dir / "data"), "-m", mode, "-w", "stop")

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://lmrec@127.0.0.1:{self.port}/{db}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def remove(self) -> None:
        if self.dir is not None:
            self.stop("immediate")
            shutil.rmtree(self.dir, ignore_errors=True)
