"""The `${migt.*}` (and `${len:}`) OmegaConf resolvers that conf/ uses. Registered by
`import migt_train`, so Hydra's compose API works from a notebook; nothing heavy is imported here
(the feature list is looked up when a resolver first runs)."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

from omegaconf import ListConfig, OmegaConf

# One id per process: Hydra resolves run/sweep dirs more than once, and every resolution must agree.
# The random suffix keeps two runs started in the same second apart.
RUN_ID = time.strftime("%Y-%m-%d_%H-%M-%S") + "_" + secrets.token_hex(3)


def new_run_id() -> str:
    """A fresh run id for the next run of this process (migt_train.train() called again from a notebook)."""
    global RUN_ID
    RUN_ID = time.strftime("%Y-%m-%d_%H-%M-%S") + "_" + secrets.token_hex(3)
    return RUN_ID


def _feature_names() -> list[str]:
    from migt_train.data.features import FEATURE_NAMES

    return list(FEATURE_NAMES)


def _n_event_features(on: bool) -> int:
    from migt_train.volatility.events import N_EVENT_FEATURES

    return N_EVENT_FEATURES if on else 0


def _n_realized(on: bool) -> int:
    from migt_train.volatility.realized import N_REALIZED

    return N_REALIZED if on else 0


def _horizon_bars(minutes, bar_minutes) -> ListConfig:
    from migt_train.data.schema import horizon_bars

    # a ListConfig, not a list: OmegaConf.resolve (Hydra's --cfg job --resolve) can only put a node in place
    return ListConfig(horizon_bars(list(minutes), bar_minutes))


def _lookback_bars(hours, bar_minutes) -> int:
    from migt_train.data.schema import lookback_bars

    return lookback_bars(hours, bar_minutes)


def _sqlite_url(path: str) -> str:
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        pass  # a directory that cannot be made: opening the study names the file and the key (sweep/storage.py)
    return f"sqlite:///{path}"


def _sweep_range_resolvers() -> dict:
    from migt_train.sweep.ranges import RESOLVERS

    return RESOLVERS


def register_resolvers() -> None:
    resolvers = {
        "len": lambda seq: len(seq),
        "migt.n_features": lambda: len(_feature_names()),
        "migt.feature_index": lambda name: _feature_names().index(name),
        "migt.bars_per_day": lambda bar_minutes: 24 * 60 // int(bar_minutes),
        "migt.horizons": _horizon_bars,  # data.horizons from data.horizon_minutes
        "migt.lookback_bars": _lookback_bars,  # data.max_seq_len from data.lookback_hours
        "migt.n_event_features": _n_event_features,
        "migt.n_realized": _n_realized,
        "migt.run_id": lambda: RUN_ID,
        "migt.sqlite_url": _sqlite_url,
        **_sweep_range_resolvers(),
    }
    for name, fn in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
