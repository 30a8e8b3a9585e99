"""`TrainerConfig`: the `trainer.*` keys, their defaults (conf/trainer/default.yaml repeats them for
users) and their value rules. The same dataclass is the group's structured schema in Hydra's
ConfigStore (migt_train.config.schema), so types and unknown keys are enforced by the merge and only the
value rules are written out here."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping, Optional

from migt_train.errors import MigtError


@dataclass
class TrainerConfig:
    max_epochs: int = 100
    batch_size: int = 128
    gradient_accumulation_steps: int = 2
    mixed_precision: bool = True  # only acts on CUDA
    amp_dtype: str = "auto"
    gradient_clip_norm: Optional[float] = 1.0
    early_stopping_patience: int = 10
    early_stopping_min_delta: float = 1e-5
    save_top_k: int = 3
    resume: Optional[str] = None
    max_nonfinite_steps: int = 20
    log_every_n_steps: int = 50
    limit_train_batches: Optional[int] = None
    eval_batch_size: int = 512
    device: str = "auto"
    progress: bool = True
    ema_decay: Optional[float] = None
    # score the initial weights on val as "epoch 0", a candidate for best.pt: a model that starts at a
    # strong forecast (model.vol_anchor) is then never made worse by training that does not help on val
    validate_before_training: bool = False
    # lr of the model's body (everything but the output heads) relative to optimizer.lr (trainer._optimizer)
    body_lr_scale: float = 1.0
    # a pooled run: the weight decay of each instrument's deviation from the heads' shared context weights
    # (trainer._optimizer); runs recorded before the key trained with 0 (run/resume.ADDED_KEYS)
    instrument_decay: float = 100.0

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "TrainerConfig":
        """Checked construction from plain values (a key left out takes its default)."""
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise MigtError(f"config key 'trainer.{unknown[0]}': unknown option (known: {', '.join(known)})")
        cfg = cls(**values)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Raise MigtError naming the first bad `trainer.*` value."""
        cfg = asdict(self)

        def bad(key: str, rule: str) -> MigtError:
            return MigtError(f"config key 'trainer.{key}': {rule} (got {cfg[key]!r})")

        def is_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        def is_number(v: Any) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool)

        for key in ("batch_size", "gradient_accumulation_steps", "log_every_n_steps",
                    "eval_batch_size", "max_nonfinite_steps"):
            if not is_int(cfg[key]) or cfg[key] < 1:
                raise bad(key, "must be an integer >= 1")
        # max_epochs 0: no training; the initial weights are validated (epoch 0) and evaluated
        for key in ("max_epochs", "early_stopping_patience", "save_top_k"):
            if not is_int(cfg[key]) or cfg[key] < 0:
                raise bad(key, "must be an integer >= 0")
        limit = cfg["limit_train_batches"]
        if limit is not None and (not is_int(limit) or limit < 1):
            raise bad("limit_train_batches", "must be null or an integer >= 1")
        for key in ("gradient_clip_norm", "early_stopping_min_delta"):
            if cfg[key] is not None and (not is_number(cfg[key]) or cfg[key] < 0):
                raise bad(key, "must be null or a number >= 0")
        v = cfg["ema_decay"]
        if v is not None and (not is_number(v) or not 0 < v < 1):
            raise bad("ema_decay", "must be null or a number in (0, 1)")
        if not isinstance(cfg["body_lr_scale"], (int, float)) or isinstance(cfg["body_lr_scale"], bool) \
                or not 0 <= cfg["body_lr_scale"] <= 1:
            raise bad("body_lr_scale", "must be a number in [0, 1]")
        if not is_number(cfg["instrument_decay"]) or cfg["instrument_decay"] < 0:
            raise bad("instrument_decay", "must be a number >= 0")
        if cfg["amp_dtype"] not in ("auto", "float16", "bfloat16"):
            raise bad("amp_dtype", "must be auto, float16 or bfloat16")
        if cfg["device"] not in ("auto", "cpu", "cuda") and not str(cfg["device"]).startswith("cuda:"):
            raise bad("device", "must be auto, cpu or cuda")
        for key in ("mixed_precision", "progress", "validate_before_training"):
            if not isinstance(cfg[key], bool):
                raise bad(key, "must be true or false")


TRAINER_DEFAULTS: dict[str, Any] = asdict(TrainerConfig())
