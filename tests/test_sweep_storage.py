"""`hydra.sweeper.storage` that cannot be used: a PostgreSQL host that accepts connections and never answers
(a real socket server, not a mock), URLs that name no usable database, a SQLite file that cannot be written.
Each is one line naming the key and where it points (never the password), in bounded time; Ctrl-C works."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from migt_train.errors import MigtError
from migt_train.sweep import storage

ROOT = Path(__file__).resolve().parents[1]


def _within(seconds: float, fn, *args):
    """fn(*args)'s exception (or result), failing the test when it has not returned after `seconds` (a hang)."""
    out: list = []

    def call() -> None:
        try:
            out.append(fn(*args))
        except BaseException as e:  # noqa: BLE001  (handed to the test)
            out.append(e)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(seconds)
    assert out, f"still waiting after {seconds} s"
    return out[0]


@pytest.fixture
def silent_port():
    """A TCP server on 127.0.0.1 that accepts every connection and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield SimpleNamespace(port=server.getsockname()[1], accepted=held)
    stop.set()
    thread.join()
    for s in held:
        s.close()
    server.close()


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+psycopg2"])
def test_host_that_never_answers_is_one_line_in_bounded_time(silent_port, monkeypatch, caplog, scheme):
    monkeypatch.setattr(storage, "CONNECT_TIMEOUT_S", 1)
    port = silent_port.port
    url = f"{scheme}://migt:s3cret@127.0.0.1:{port}/study"
    with caplog.at_level(logging.INFO):
        err = _within(8, storage.open_storage, url)
    assert isinstance(err, MigtError), err
    msg = str(err)
    assert "\n" not in msg and "hydra.sweeper.storage" in msg and f"127.0.0.1:{port}" in msg
    assert "did not answer" in msg and "s3cret" not in msg
    said = [r.getMessage() for r in caplog.records]
    assert any(f"127.0.0.1:{port}/study" in m and "***" in m for m in said)
    assert not any("s3cret" in m for m in said)


@pytest.mark.slow
def test_ctrl_c_ends_a_hanging_connection_at_once(silent_port):
    # a connect timeout far beyond the wait below: only Ctrl-C can end the attempt in time
    url = f"postgresql://migt:s3cret@127.0.0.1:{silent_port.port}/study?connect_timeout=300"
    code = f"from migt_train.sweep.storage import open_storage; open_storage({url!r})"
    # as from a terminal: SIGINT at its default in the child, whatever an earlier test left in this process
    # (an ignored SIGINT is inherited across exec, and Python then installs no KeyboardInterrupt handler)
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    t0 = time.monotonic()
    while not silent_port.accepted:  # imported and connecting
        assert proc.poll() is None and time.monotonic() - t0 < 60
        time.sleep(0.05)
    time.sleep(0.5)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert time.monotonic() - t0 < 30 and "KeyboardInterrupt" in proc.stderr.read()


@pytest.mark.parametrize("url, said", [
    ("optuna.db", "not a database URL"),
    ("mysqlx://h/db", "mysqlx"),
    ("sqlite:////proc/migt_no_such_dir/optuna.db", "/proc/migt_no_such_dir/optuna.db"),
])
def test_unusable_urls_name_the_key(url, said):
    with pytest.raises(MigtError) as err:
        storage.open_storage(url)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("hydra.sweeper.storage") and said in msg


@pytest.mark.slow
@pytest.mark.parametrize("override", ["hydra.sweeper.storage=mysqlx://h/db",
                                      "output_root=/proc/migt_read_only"])  # the default SQLite file, unwritable
def test_sweep_with_a_wrong_storage_url_is_one_line(tmp_path, override):
    env = {**os.environ, "MIGT_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), "-m", "hparams_search=optuna", "experiment=smoke",
                           override], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: hydra.sweeper.storage"), proc.stderr[-2000:]
