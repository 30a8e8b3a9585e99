"""The composed config of `python run.py <overrides>` without running it: Hydra's compose API on conf/."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import migt_train  # noqa: F401  (registers the ${migt.*} resolvers conf/ uses)
from migt_train.errors import MigtError

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def compose_config(overrides: Sequence[str] = (), config_dir: str | Path | None = None) -> Any:
    """The DictConfig `python run.py <overrides>` would run with (conf/ by default); a bad override is
    a MigtError."""
    from hydra import compose, initialize_config_dir

    conf = Path(config_dir or CONF_DIR).resolve()
    if not conf.is_dir():
        raise MigtError(f"{conf}: config directory not found")
    try:
        with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
            return compose(config_name="config", overrides=list(overrides))
    except Exception as e:  # Hydra raises several unrelated types for bad overrides
        raise MigtError(f"overrides {' '.join(overrides)}: {e}".replace("\n", " ")) from None
