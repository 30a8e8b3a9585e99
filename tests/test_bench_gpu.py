"""`python -m migt_train.bench --sections gpu`: one clean line without CUDA; figures with it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_bench_refuses_without_cuda_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "migt_train.bench", "--sections", "gpu"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: bench --sections gpu: needs CUDA, and this machine has none (torch.cuda.is_available() is False)"]


@pytest.mark.gpu
def test_gpu_bench_reports_throughput_memory_and_matmul_ratio() -> None:
    from migt_train.cli.bench import gpu_section

    rows = gpu_section(quick=True)
    assert [r["amp"] for r in rows] == ["float16", "bfloat16"]
    for r in rows:
        assert r["samples_per_second"] > 0 and r["peak_gib"] > 0 and 0 < r["ratio"] < 1.5
