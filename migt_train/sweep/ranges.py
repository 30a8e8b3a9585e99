"""Search ranges derived from the experiment's schedule (resolvers used by hparams_search/optuna).

A warmup of up to 2,000 steps means nothing in a run of 8 optimizer steps, and a cosine cycle
longer than the run never restarts; the ranges therefore follow `trainer.*` of the composed
experiment (and any override of it on the command line).
"""

from __future__ import annotations

# Upper ends for runs whose length is set by the data (no trainer.limit_train_batches), e.g. the
# user's nq_full: 100 epochs of a few hundred optimizer steps or more, where 0-2000 warmup steps
# and cycles of 2-20 epochs are the design document's range.
WARMUP_STEPS_CAP = 2000
T_0_CAP = 20


def max_warmup_steps(max_epochs: int, limit_train_batches: int | None, accumulation: int) -> int:
    """A quarter of the run's optimizer steps when it is known from the config, at most the cap."""
    if limit_train_batches is None:
        return WARMUP_STEPS_CAP
    total_steps = int(max_epochs) * int(limit_train_batches) // max(1, int(accumulation))
    return max(0, min(WARMUP_STEPS_CAP, total_steps // 4))


def max_t_0(max_epochs: int) -> int:
    """The first cosine cycle (in epochs) may span the whole run, at most the cap."""
    return max(1, min(T_0_CAP, int(max_epochs)))


RESOLVERS = {
    "migt.sweep_max_warmup_steps": max_warmup_steps,
    "migt.sweep_max_t_0": max_t_0,
}
