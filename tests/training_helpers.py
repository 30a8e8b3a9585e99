"""Fixtures for the training tests: a seeded random MarketData and a small contract-following model."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from migt_train.data.market import MarketData
from migt_train.training import CombinedQuantileLoss, Trainer, TrainerConfig, WarmupCosineScheduler

LEVELS = [0.05, 0.1, 0.25, 0.5, 0.75, 0.89, 0.94]
HORIZONS = [3, 6, 12, 24, 48]
HORIZON_NAMES = ["15m", "30m", "1h", "2h", "4h"]


@pytest.fixture(autouse=True)
def one_thread():
    """Bit-for-bit comparisons between runs need the same reduction order: one thread."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def make_market(n: int = 480, v: int = 4, seq_len: int = 12, seed: int = 0) -> MarketData:
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(n, v, generator=g)
    vol = 0.001 * (1 + features[:, 0].abs())
    targets = torch.stack(
        [vol * (h ** 0.5) * torch.randn(n, generator=g) + 2e-4 * features[:, 1] for h in HORIZONS], dim=1
    ).float()
    idx = torch.arange(n)
    session = idx // 96  # 96 bars per "session" so window_start varies
    window_start = torch.maximum(session * 96, idx - seq_len + 1)
    ts = np.datetime64("2024-01-02T23:00") + np.arange(n) * np.timedelta64(5, "m")
    n_train, n_val = int(n * 0.6), int(n * 0.2)
    rows = torch.arange(seq_len, n)
    return MarketData(
        features=features,
        feature_names=[f"f{i}" for i in range(v)],
        timestamps=ts.astype("datetime64[ns]"),
        bar_in_day=(idx % 288).long(),
        day_of_week=(session % 5).long(),
        day_of_month=(session % 28 + 1).long(),
        day_of_year=(session % 365 + 1).long(),
        window_start=window_start.long(),
        targets=targets,
        horizons=HORIZONS,
        horizon_names=HORIZON_NAMES,
        bar_minutes=5,
        max_seq_len=seq_len,
        splits={
            "train": rows[rows < n_train],
            "val": rows[(rows >= n_train) & (rows < n_train + n_val)],
            "test": rows[rows >= n_train + n_val],
        },
        source="random",
    )


class TinyQuantileModel(nn.Module):
    """Masked mean + last bar -> MLP -> base + cumsum(softplus) quantiles: non-crossing by construction."""

    def __init__(self, n_variables: int = 4, n_horizons: int = 5, n_quantiles: int = 7,
                 hidden: int = 32, dropout: float = 0.0, slow: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("input_mean", torch.zeros(n_variables))
        self.register_buffer("input_std", torch.ones(n_variables))
        self.register_buffer("target_mean", torch.zeros(n_horizons))
        self.register_buffer("target_std", torch.ones(n_horizons))
        self.dow = nn.Embedding(7, 4)
        self.net = nn.Sequential(nn.Linear(2 * n_variables + 4, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, n_horizons * n_quantiles))
        self.h, self.q = n_horizons, n_quantiles
        self.slow = slow  # seconds of sleep per forward, so subprocess tests can be killed mid-epoch

    @torch.no_grad()
    def set_scaling(self, input_mean, input_std, target_mean, target_std) -> None:
        for name, value in (("input_mean", input_mean), ("input_std", input_std),
                            ("target_mean", target_mean), ("target_std", target_std)):
            getattr(self, name).copy_(value)

    def forward(self, features: torch.Tensor, mask: torch.Tensor, time: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if self.slow:
            import time as _t

            _t.sleep(self.slow)
        x = (features - self.input_mean) / self.input_std * mask[..., None]
        mean = x.sum(1) / mask.sum(1, keepdim=True).clamp_min(1)
        z = torch.cat([mean, x[:, -1], self.dow(time["day_of_week"])], dim=-1)
        raw = self.net(z).view(-1, self.h, self.q)
        q_std = torch.cat([raw[..., :1], raw[..., :1] + torch.cumsum(F.softplus(raw[..., 1:]), -1)], -1)
        return {"quantiles": q_std * self.target_std[:, None] + self.target_mean[:, None], "quantiles_std": q_std}


def make_trainer(run_dir: Path, data: MarketData | None = None, model: nn.Module | None = None,
                 seed: int = 0, lr: float = 1e-2, dropout: float = 0.1, slow: float = 0.0,
                 optimizer: Any = None, scheduler: Any = None, **cfg: Any) -> Trainer:
    data = data or make_market()
    torch.manual_seed(seed)
    model = model or TinyQuantileModel(n_variables=data.n_features, dropout=dropout, slow=slow)
    defaults = dict(max_epochs=3, batch_size=32, gradient_accumulation_steps=2, progress=False,
                    device="cpu", log_every_n_steps=5, eval_batch_size=64)
    return Trainer(
        model=model,
        data=data,
        loss_fn=CombinedQuantileLoss(LEVELS),
        optimizer=optimizer or functools.partial(torch.optim.AdamW, lr=lr, weight_decay=0.01),
        scheduler=scheduler or functools.partial(WarmupCosineScheduler, warmup_steps=4, t_0=2, t_mult=2, eta_min=1e-4),
        run_dir=run_dir,
        seed=seed,
        levels=LEVELS,
        config=TrainerConfig.from_mapping({**defaults, **cfg}),
        run_config={"test": True, "seed": seed},
    )


def val_losses(result_or_history: Any) -> list[float]:
    hist = getattr(result_or_history, "history", result_or_history)
    return [r["val_loss"] for r in hist]


def _main(argv: list[str]) -> int:
    """Subprocess entry for the SIGKILL / SIGTERM tests: RUN_DIR EPOCHS SLOW [RESUME]."""
    import sys

    from migt_train.errors import MigtError

    torch.set_num_threads(1)
    run_dir, epochs, slow = Path(argv[0]), int(argv[1]), float(argv[2])
    resume = argv[3] if len(argv) > 3 else None
    try:
        res = make_trainer(run_dir, max_epochs=epochs, slow=slow, resume=resume, early_stopping_patience=0).fit()
    except MigtError as e:
        print(e, file=sys.stderr)
        return 2
    print("done", res.epochs_run, flush=True)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(_main(sys.argv[1:]))
