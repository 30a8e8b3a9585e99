"""`python -m migt_train.sweep.memory [--interval S] -- <command ...>`: memory of a process tree.

Runs the command and polls /proc (Linux) for it and every descendant: prints each process's peak
resident set (VmHWM, kept by the kernel, read until the process exits) and the largest total of
resident sets seen at one poll. Used to measure what parallel launchers (joblib) cost in memory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def _status(pid: int) -> dict[str, str]:
    fields = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    except OSError:
        pass
    return fields


def _children(pid: int) -> list[int]:
    kids = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return kids


def _tree(root: int) -> list[int]:
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo += _children(pid)
    return pids


def _kib(value: str | None) -> int:
    return int(value.split()[0]) if value else 0


def measure(command: list[str], interval: float) -> dict:
    proc = subprocess.Popen(command, stdout=sys.stderr)  # stdout carries only the report
    peaks: dict[int, dict] = {}
    peak_total = 0
    while proc.poll() is None:
        total = 0
        for pid in _tree(proc.pid):
            status = _status(pid)
            if "VmHWM" not in status:  # gone, or a zombie: keep the last reading
                continue
            total += _kib(status.get("VmRSS"))
            peaks[pid] = {"pid": pid, "name": status.get("Name"), "peak_rss_mib": _kib(status["VmHWM"]) / 1024}
        peak_total = max(peak_total, total)
        time.sleep(interval)
    return {
        "returncode": proc.returncode,
        "processes": sorted(peaks.values(), key=lambda p: -p["peak_rss_mib"]),
        "peak_total_rss_mib": peak_total / 1024,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m migt_train.sweep.memory", description=__doc__)
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between polls")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- command and its arguments")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to measure after --")
    report = measure(command, args.interval)
    print(json.dumps(report, indent=2))
    return int(report["returncode"] != 0)


if __name__ == "__main__":
    sys.exit(main())
