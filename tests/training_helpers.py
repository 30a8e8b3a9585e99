"""The trainer tests' helpers: the toy market preset they use and a Trainer built with test defaults."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import torch
from torch import nn

from migt_train.data.market import MarketData
from migt_train.training import CombinedQuantileLoss, Trainer, TrainerConfig, WarmupCosineScheduler
from toys import LEVELS, ToyQuantileModel, toy_market

HORIZONS = [3, 6, 12, 24, 48]


def make_market(n: int = 480, seed: int = 0) -> MarketData:
    """The toy market as the trainer tests use it: 4 features, 5 horizons, 12-bar windows, no purge."""
    return toy_market(n=n, horizons=HORIZONS, seq_len=12, n_noise=2, session_bars=96, seed=seed)


def make_trainer(run_dir: Path, data: MarketData | None = None, model: nn.Module | None = None,
                 seed: int = 0, lr: float = 1e-2, dropout: float = 0.1, slow: float = 0.0,
                 optimizer: Any = None, scheduler: Any = None, **cfg: Any) -> Trainer:
    data = data or make_market()
    torch.manual_seed(seed)
    model = model or ToyQuantileModel(n_variables=data.n_features, dropout=dropout, slow=slow)
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
    from migt_train.run.stops import RunStopped

    torch.set_num_threads(1)
    run_dir, epochs, slow = Path(argv[0]), int(argv[1]), float(argv[2])
    resume = argv[3] if len(argv) > 3 else None
    try:
        res = make_trainer(run_dir, max_epochs=epochs, slow=slow, resume=resume, early_stopping_patience=0).fit()
    except (MigtError, RunStopped) as e:  # RunStopped: SIGTERM, state saved
        print(e, file=sys.stderr)
        return 2
    print("done", res.epochs_run, flush=True)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(_main(sys.argv[1:]))
