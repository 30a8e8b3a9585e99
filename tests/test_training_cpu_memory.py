"""glibc malloc tuning: freed activation memory is reused instead of page-faulted in every step."""

import os
import subprocess
import sys

import pytest

from migt_train.training.cpu_memory import retain_freed_memory

# a few training steps of a model with several-MB activations of varied sizes; prints minor faults per step
SCRIPT = """
import resource, sys, torch
from migt_train.model import MIGTTVDT
from migt_train.training.cpu_memory import retain_freed_memory
if sys.argv[1] == "retain":
    assert retain_freed_memory()
torch.manual_seed(0)
model = MIGTTVDT(n_variables=24, n_horizons=5, n_quantiles=7, max_seq_len=288, d_model=32, n_heads=2,
                 d_ff=128, n_temporal_layers=1, n_variable_layers=1, head_hidden=32, patch_len=12)
x, mask = torch.randn(16, 288, 24), torch.ones(16, 288, dtype=torch.bool)
time = {"bar_in_day": torch.arange(288).expand(16, -1), "day_of_week": torch.zeros(16, dtype=torch.long),
        "day_of_month": torch.ones(16, dtype=torch.long), "day_of_year": torch.ones(16, dtype=torch.long)}
def step():
    model(x, mask, time)["quantiles_std"].square().mean().backward()
    model.zero_grad(set_to_none=True)
for _ in range(12):  # until the retained heap has reached its steady size
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5)
"""


def faults_per_step(mode: str) -> float:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    return float(out.stdout.split()[-1])


@pytest.mark.slow
def test_retained_memory_removes_per_step_page_faults():
    if not sys.platform.startswith("linux"):  # no glibc: the call must say it changed nothing
        assert retain_freed_memory() is False
        return
    default, retained = faults_per_step("default"), faults_per_step("retain")
    assert default > 500, default  # glibc maps and unmaps the large activations every step
    assert retained < default / 10, (retained, default)


def test_retain_freed_memory_is_safe_to_call_twice():
    on_glibc = sys.platform.startswith("linux")
    assert retain_freed_memory() is on_glibc and retain_freed_memory() is on_glibc
