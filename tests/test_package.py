"""The package from a notebook: `import migt_train` alone makes Hydra's compose API work, cheaply."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

COMPOSE = """
import sys
import migt_train
assert "torch" not in sys.modules and "matplotlib" not in sys.modules, "import migt_train must stay light"
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
with initialize_config_dir(config_dir=sys.argv[1], version_base="1.3"):
    cfg = compose(config_name="config", overrides=["model=migt_tvdt_cpu"])
model = instantiate(cfg.model)
print(type(model).__name__, sum(p.numel() for p in model.parameters()), cfg.model.n_variables)
import migt_train.config.schema
assert "matplotlib" not in sys.modules, "import migt_train.config.schema must not load matplotlib"
"""


def test_compose_after_import_migt_train_instantiates_the_model():
    # a fresh interpreter: in this process other tests have imported migt_train.config.schema already
    p = subprocess.run([sys.executable, "-c", COMPOSE, str(ROOT / "conf")], capture_output=True, text=True,
                       cwd=ROOT, timeout=300)
    assert p.returncode == 0, p.stderr
    name, n_params, n_variables = p.stdout.split()
    # 168,832 of the MIGT-TVDT reference architecture at CPU size (its pooling key has no bias: softmax cancels it), less the
    # 2,400 of the day-of-month and day-of-year encodings (Time2Vec 32 + 64, their 48 columns of the 48-wide
    # projection 2,304), less the 9,235 of the heads' MLP (the quickstart's model.head_shape=fixed: horizon 240,
    # w1 7,680, b1 160, w2 1,120, b2 35), plus the one learned shape (35), and the log-spread weights of the
    # anchor, release and range/volume/move inputs (5 horizons x (1 + 6 + 28) = 175)
    assert name == "MIGTTVDT" and int(n_params) == 168_832 - 2_400 - 9_235 + 35 + 175 and int(n_variables) == 24


def _libgomp_settings(env: dict) -> str:
    """libgomp's own report of its settings (OMP_DISPLAY_ENV) in a fresh interpreter that imports
    migt_train, then torch (which loads libgomp)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")} | env
    p = subprocess.run([sys.executable, "-c", "import migt_train, torch; torch.ones(4).sum()"], cwd=ROOT, timeout=300,
                       capture_output=True, text=True, env={**env, "OMP_DISPLAY_ENV": "VERBOSE"})
    assert p.returncode == 0, p.stderr
    return p.stderr


@pytest.mark.slow
def test_torch_threads_wait_passively_unless_the_user_says_otherwise():
    # spinning threads hold cores a busy neighbour needs (scripts/cpu_sharing.py): libgomp must not spin
    assert "GOMP_SPINCOUNT = '0'" in _libgomp_settings({})
    assert "OMP_WAIT_POLICY = 'ACTIVE'" in _libgomp_settings({"OMP_WAIT_POLICY": "ACTIVE"})
    assert "GOMP_SPINCOUNT = '1000'" in _libgomp_settings({"GOMP_SPINCOUNT": "1000"})
