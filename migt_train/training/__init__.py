"""Training: the loop (trainer.py) and its parts — config, train state and checkpoint files, weight
average, reporting, sampler, early stopping, losses, schedulers, the step profiler."""

from migt_train.training.checkpoint import load_checkpoint
from migt_train.training.config import TRAINER_DEFAULTS, TrainerConfig
from migt_train.training.early_stopping import EarlyStopping
from migt_train.training.losses import (
    CombinedQuantileLoss,
    PinballLoss,
    QuantileCrossingPenalty,
    QuantileLossOutput,
)
from migt_train.training.profile import step_time_split
from migt_train.training.reporting import FitResult
from migt_train.training.sampler import EpochSampler
from migt_train.training.schedulers import (
    ConstantScheduler,
    LinearWarmupScheduler,
    Scheduler,
    WarmupCosineScheduler,
)
from migt_train.training.trainer import Trainer

__all__ = [
    "CombinedQuantileLoss",
    "ConstantScheduler",
    "EarlyStopping",
    "EpochSampler",
    "FitResult",
    "LinearWarmupScheduler",
    "PinballLoss",
    "QuantileCrossingPenalty",
    "QuantileLossOutput",
    "Scheduler",
    "TRAINER_DEFAULTS",
    "Trainer",
    "TrainerConfig",
    "WarmupCosineScheduler",
    "load_checkpoint",
    "step_time_split",
]
