"""A real PostgreSQL server for the sweep tests: Debian's binaries, a throwaway cluster, loopback.

`initdb` into a temporary directory, `pg_ctl start` on a free 127.0.0.1 port with the socket in
that directory, one database, its URL yielded; stopped and removed at teardown. PostgreSQL refuses
to run as root, so under uid 0 every server command runs as the `postgres` user (`runuser`).
Missing binaries fail the tests (CI installs the `postgresql` package; see .ci/run), never skip.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import psycopg2
import pytest

SERVER_USER = "postgres"  # the unprivileged account Debian's package creates


def postgres_bindir() -> Path:
    """The directory holding initdb and pg_ctl: `pg_config --bindir`, else the newest Debian one."""
    candidates: list[Path] = []
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
                      if Path(p).parent.name.isdigit() else 0, reverse=True)
    candidates += [Path(p) for p in versions]
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    pytest.fail(
        "PostgreSQL server binaries (initdb, pg_ctl) not found via `pg_config --bindir` or "
        "/usr/lib/postgresql/*/bin: install them with `apt-get install -y postgresql` (.ci/run does)",
        pytrace=False,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    bindir = postgres_bindir()
    as_root = os.geteuid() == 0
    if as_root:
        try:
            user = pwd.getpwnam(SERVER_USER)
        except KeyError:
            pytest.fail(f"running as root needs the '{SERVER_USER}' user to start PostgreSQL", pytrace=False)
    prefix = ["runuser", "-u", SERVER_USER, "--"] if as_root else []

    # directly under the system temp dir: pytest's own tmp dirs are private to root
    root = Path(tempfile.mkdtemp(prefix="migt-postgres-"))
    if as_root:
        os.chown(root, user.pw_uid, user.pw_gid)
    data, log = root / "data", root / "server.log"
    port = _free_port()

    def server(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=120)

    init = server(str(bindir / "initdb"), "-D", str(data), "-U", "migt", "--auth=trust", "-E", "UTF8",
                  "--no-sync")
    assert init.returncode == 0, init.stdout + init.stderr
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    start = server(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "start")
    assert start.returncode == 0, start.stdout + start.stderr + (log.read_text() if log.exists() else "")
    try:
        admin = psycopg2.connect(host="127.0.0.1", port=port, user="migt", dbname="postgres")
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute("CREATE DATABASE optuna")
        admin.close()
        yield f"postgresql://migt@127.0.0.1:{port}/optuna"
    finally:
        server(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)
