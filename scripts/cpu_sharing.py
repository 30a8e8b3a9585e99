"""Training throughput alone and beside a busy neighbour process, for several OpenMP settings, paired.

    python scripts/cpu_sharing.py [--rounds 3] [--variants spin,passive,threads1]

Each measurement is one `python -m migt_train.bench --sections train` process (the quickstart's train
step, 20 steps after 2 warm-up steps) with the variant's environment; "busy" runs it while a `yes >
/dev/null` process runs beside it. The variants and both conditions are interleaved round by round, so
a change in the machine's other load hits every cell alike; the load average before each measurement is
printed with it. Prints samples/s per measurement and the median per cell.

Variants (environment of the measured process; torch's CPU threads are libgomp OpenMP threads):
  spin      GOMP_SPINCOUNT=300000: libgomp's default when OMP_WAIT_POLICY is unset (~3 ms of spinning)
  passive   OMP_WAIT_POLICY=PASSIVE: a waiting thread sleeps at once
  default   the package's own setting (nothing set: what `python run.py` gets)
  spinNNN   GOMP_SPINCOUNT=NNN
  threads1  one thread (OMP_NUM_THREADS=1)
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OMP_KEYS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
RATE = re.compile(r"->\s*([\d,]+) samples/s")


def variant_env(name: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in OMP_KEYS}
    if name == "spin":
        env["GOMP_SPINCOUNT"] = "300000"
    elif name == "passive":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    elif name == "threads1":
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = "1"
    elif name.startswith("spin") and name[4:].isdigit():
        env["GOMP_SPINCOUNT"] = name[4:]
    elif name != "default":
        raise SystemExit(f"error: --variants: unknown variant {name!r} (spin, passive, default, spinNNN, threads1)")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def measure(variant: str, busy: bool) -> float:
    cmd = [sys.executable, "-m", "migt_train.bench", "--sections", "train"]
    neighbour = subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) if busy else None
    try:
        out = subprocess.run(cmd, env=variant_env(variant), cwd=ROOT, capture_output=True, text=True, check=False)
    finally:
        if neighbour is not None:
            neighbour.kill()
            neighbour.wait()
    m = RATE.search(out.stdout)
    if out.returncode or m is None:
        raise SystemExit(f"error: {' '.join(cmd)} failed ({out.returncode}):\n{out.stderr[-2000:]}")
    return float(m.group(1).replace(",", ""))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variants", default="spin,passive,threads1")
    args = parser.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    for v in variants:
        variant_env(v)  # unknown names fail before any measurement
    cells: dict[tuple[str, str], list[float]] = {}
    print(f"{os.cpu_count()} CPUs; load average before each measurement (1 min)")
    for r in range(args.rounds):
        # alternate the order every round so neither condition always runs first
        order = [(v, b) for v in variants for b in (False, True)]
        for v, busy in order if r % 2 == 0 else order[::-1]:
            load = os.getloadavg()[0]
            rate = measure(v, busy)
            cond = "busy" if busy else "idle"
            cells.setdefault((v, cond), []).append(rate)
            print(f"round {r + 1}  {v:<10} {cond:<5} load {load:5.2f}  {rate:7,.0f} samples/s", flush=True)
    print("\nmedian samples/s (min-max)")
    print(f"{'variant':<10} {'idle':>18} {'busy':>18}  busy/idle")
    for v in variants:
        idle, busy = cells[(v, "idle")], cells[(v, "busy")]
        fmt = lambda xs: f"{statistics.median(xs):,.0f} ({min(xs):,.0f}-{max(xs):,.0f})"  # noqa: E731
        print(f"{v:<10} {fmt(idle):>18} {fmt(busy):>18}  {statistics.median(busy) / statistics.median(idle):.2f}")


if __name__ == "__main__":
    main()
