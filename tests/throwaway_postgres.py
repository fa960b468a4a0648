"""A throw-away PostgreSQL for the real-server tests, started by the test session itself (tests/conftest.py) when
Debian's ``postgresql`` package is installed (``install.sh --test`` installs it) and ``EHRFORGE_TEST_POSTGRES_URL``
is not already set: a temp data directory, trust auth, 127.0.0.1 and a random free port only, stopped and deleted
when the session ends. So plain ``pytest`` runs them on a fresh machine, not only under ``.ci/run``."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: [int(x) for x in Path(p).parent.name.split(".") if x.isdigit()])
    return Path(found[-1]) if found and (Path(found[-1]) / "initdb").exists() else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThrowawayPostgres:
    def __init__(self) -> None:
        self.tmp: Path | None = None
        self.run_as: list[str] = []
        self.bin: Path | None = None

    def start(self) -> str | None:
        """The server's URL, or None when no server could be started (the tests then skip and say why)."""
        self.bin = _bin_dir()
        if self.bin is None:
            return None
        self.tmp = Path(tempfile.mkdtemp(prefix="ehrforge-pg."))
        if os.geteuid() == 0:  # initdb refuses to run as root
            self.run_as = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.tmp, "postgres")
        port = _free_port()
        try:
            subprocess.run([*self.run_as, str(self.bin / "initdb"), "-D", str(self.tmp / "data"), "-A", "trust", "-U", "ehrforge"],
                           check=True, capture_output=True, timeout=120)
            subprocess.run([*self.run_as, str(self.bin / "pg_ctl"), "-D", str(self.tmp / "data"), "-l", str(self.tmp / "server.log"),
                            "-w", "-o", f"-c listen_addresses=127.0.0.1 -p {port} -k {self.tmp}", "start"],
                           check=True, capture_output=True, timeout=120)
        except (OSError, subprocess.SubprocessError):
            self.stop()
            return None
        return f"postgresql://ehrforge@127.0.0.1:{port}/postgres"

    def stop(self) -> None:
        if self.tmp is None or self.bin is None:
            return
        subprocess.run([*self.run_as, str(self.bin / "pg_ctl"), "-D", str(self.tmp / "data"), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp = None
