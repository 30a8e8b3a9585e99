"""The training loop: epochs of accumulated, clipped optimizer steps, validation every epoch, early
stopping, checkpoints and exact resume. State, weight average, stop signal and reporting live in
their own modules (state.py, ema.py, reporting.py; the stop signal in migt_train.run.stops); device, process group, seeds and
mixed precision in migt_train.training.runtime; the forward/loss step in step.py; validation in
migt_train.training.inference.

Design notes (why, not what):
- Non-finite detection: one host sync per *optimizer step* (not per micro-batch): a 2-element
  flag (all micro-batch losses finite, grad norm finite) is read after unscale/clip to decide whether
  to step. Masking the update on device instead would need optimizer support (fused Adam found_inf)
  that SGD/Adam(W) in foreach mode lack. With fp16 AMP, GradScaler already makes the same decision
  for gradient overflow; only a non-finite *loss* counts as a non-finite step there, since overflow
  while the scale calibrates is normal. Skipped steps do not advance the scheduler.
- Losses are summed on device and read once per log interval and once per epoch.
- Gradient accumulation weights micro-batch i by n_i / N_group (= 1/steps for full batches), so a
  group of micro-batches gives exactly the gradient of one batch of N_group samples.
- Interrupts (SIGINT/SIGTERM) stop at the next optimizer-step boundary and save last.pt *mid-epoch*:
  the sampler's (epoch, position), the epoch's on-device loss sums and every RNG state. The epoch's
  batch order is rebuilt from (seed, epoch), so resuming continues bit-for-bit where it stopped.
- File writes, log lines and logger calls happen on the main process only (runtime.is_main).
- DDP (torchrun): the optimizer steps the raw model; forward/backward go through the DDP wrapper,
  which all-reduces gradients on the last micro-batch of a group only (no_sync before). Micro-batch
  i on a rank is weighted n_i * W / N_group(global), so DDP's mean over W ranks is the gradient of
  the whole global group. Every decision that ends a step or the run is taken from all-reduced
  values: the per-step flags (loss finite, grad finite, stop requested on any rank) are one
  3-element all-reduce in place of the single-process sync; loss sums and sample counts are
  reduced at log/epoch ends; validation is sharded and its predictions gathered, so val loss,
  metrics, early stopping and divergence are the same numbers on every rank.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import numpy as np
import torch
from torch import nn

from migt_train.data.market import MarketData
from migt_train.data.pooled import is_pooled
from migt_train.errors import MigtError
from migt_train.evaluation.metrics import quantile_metrics
from migt_train.evaluation.per_instrument import instrument_scores, instrument_summary
from migt_train.training.inference import infer
from migt_train.training.runtime import Runtime, all_gather_rows, all_reduce, seed_everything, shard, wrap_ddp
from migt_train.training.checkpoint import TopK
from migt_train.training import divergence
from migt_train.training.config import TrainerConfig
from migt_train.training.early_stopping import EarlyStopping
from migt_train.training.ema import WeightAverage
from migt_train.training.reporting import FitResult, MetricsLogger, Validation, epoch_record, progress_bar, write_history
from migt_train.training.sampler import EpochSampler
from migt_train.training.schedulers import Scheduler
from migt_train.run.stops import RunStopped, StopSignal
from migt_train.training.state import CheckpointFiles, Progress, TrainState, json_plain
from migt_train.training.step import gather, loss_step
from migt_train.training.accumulate import EpochSums, total_norm

# the output heads and a pooled model's instrument embedding (parameter name prefixes); the rest is the body
HEADS = ("heads.", "instrument.")
DEVIATIONS = ("heads.instrument_context_scale",)
log = logging.getLogger(__name__)


class Trainer:
    """Train `model` on `data` (train split), validate on the val split every epoch.

    optimizer: params -> Optimizer (a hydra `_partial_`); scheduler: Optimizer -> Scheduler (partial).
    runtime: device, rank/world size and precision; by default made from `config` (device,
    mixed_precision, amp_dtype) in this process.
    """

    def __init__(
        self,
        model: nn.Module,
        data: MarketData,
        loss_fn: nn.Module,
        optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer],
        scheduler: Callable[[torch.optim.Optimizer], Scheduler],
        run_dir: str | Path,
        seed: int,
        levels: list[float],
        config: TrainerConfig,
        logger: MetricsLogger | None = None,
        run_config: Mapping[str, Any] | None = None,
        runtime: Runtime | None = None,
    ) -> None:
        config.validate()
        self.cfg = config
        self.levels = [float(v) for v in levels]
        loss_levels = getattr(loss_fn, "quantiles", None)
        if loss_levels is not None and not np.allclose(list(loss_levels), self.levels):
            raise MigtError(f"loss.quantiles {list(loss_levels)} differ from the quantile levels {self.levels}")
        if "val" not in data.splits or len(data.splits["val"]) == 0:
            raise MigtError("data: the val split is empty; the trainer needs it for early stopping")
        if len(data.splits.get("train", [])) == 0:
            raise MigtError("data: the train split is empty")

        self.runtime = runtime or Runtime.create(config.device, config.mixed_precision, config.amp_dtype)
        self.device, self.precision = self.runtime.device, self.runtime.precision
        self.is_main = self.runtime.is_main
        self.data = data.to(self.device)  # resident on a GPU: batches are gathered there (step.gather)
        self.run_dir = Path(run_dir)
        self.seed = int(seed)
        self.logger = logger
        self.run_config = json_plain(run_config)
        self.scaler = self.precision.grad_scaler()

        self.model = model.to(self.device)
        self.loss_fn = loss_fn.to(self.device)
        if config.body_lr_scale < 1 and not any(n.startswith(HEADS) for n, _ in self.model.named_parameters()):
            raise MigtError(f"config key 'trainer.body_lr_scale': {config.body_lr_scale} needs a model with output "
                            f"heads (parameters named {' or '.join(h + '*' for h in HEADS)}); "
                            f"{type(self.model).__name__} has none, so use 1")
        if config.body_lr_scale == 0:  # a frozen body: no gradients through it (the backward stops at the heads)
            for name, param in self.model.named_parameters():
                if not name.startswith(HEADS):
                    param.requires_grad_(False)
        named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        self.param_names, self.params = [n for n, _ in named], [p for _, p in named]
        self.ema = WeightAverage(self.params, config.ema_decay) if config.ema_decay else None
        self.optimizer = _optimizer(optimizer, named, config.body_lr_scale, config.instrument_decay)
        self.scheduler = scheduler(self.optimizer)
        dist = self.runtime.dist
        if config.batch_size < dist.world_size:
            raise MigtError(f"config key 'trainer.batch_size': the global batch ({config.batch_size}) must be at "
                            f"least the number of processes ({dist.world_size})")
        if len(data.splits["val"]) < dist.world_size:
            raise MigtError(f"data: the val split ({len(data.splits['val'])} samples) is smaller than the number "
                            f"of processes ({dist.world_size})")
        self.net = wrap_ddp(self.model, self.runtime)  # forward/backward; self.model owns state
        self.sampler = EpochSampler(data.splits["train"], config.batch_size, self.seed, config.limit_train_batches,
                                    rank=dist.rank, world_size=dist.world_size)
        self.early = EarlyStopping(config.early_stopping_patience, config.early_stopping_min_delta or 0.0)
        self.topk = TopK(self.run_dir / "checkpoints", config.save_top_k)
        self.files = CheckpointFiles(self.run_dir / "checkpoints", self.topk, self.is_main)
        self.progress = Progress()
        self.state = TrainState(
            model=self.model, param_names=self.param_names, ema=self.ema, optimizer=self.optimizer,
            scheduler=self.scheduler, scaler=self.scaler, early=self.early,
            progress=self.progress, sampler=self.sampler, topk=self.topk, seed=self.seed, rank=dist.rank,
            identity={"config": self.run_config, "trainer": json_plain(config.__dict__), "seed": self.seed,
                      "feature_names": list(data.feature_names), "horizon_names": list(data.horizon_names),
                      "instruments": list(data.instruments), "levels": self.levels})
        self.stop = StopSignal()
        self.stop_all = False  # any rank asked to stop (all-reduced with the step flags)
        self._flag = torch.tensor([0.0, 1.0], device=self.device).unbind()

    def _log(self, metrics: dict[str, float], step: int) -> None:
        if self.logger is not None and self.is_main:
            self.logger.log_metrics(metrics, step)

    def _info(self, msg: str, *args: Any) -> None:
        if self.is_main:
            log.info(msg, *args)

    def _interrupt(self) -> None:
        p = self.progress
        if self.is_main:
            write_history(self.run_dir, p.history)
        raise RunStopped(
            f"training interrupted by {self.stop.received().name} at epoch {p.epoch + (1 if p.mid_epoch else 0)}, "
            f"global step {p.global_step}; state saved to {self.files.last}. Resume with trainer.resume=auto "
            f"(same run directory, hydra.run.dir={self.run_dir}) or trainer.resume={self.files.last}",
            int(self.stop.received()),
        )

    # -- one optimizer step -----------------------------------------------------------------------
    def _optimizer_step(self, group_ok: torch.Tensor, epoch: int) -> bool:
        """Unscale, clip, step when finite; returns whether the step counts as non-finite."""
        if self.scaler.is_enabled():
            self.scaler.unscale_(self.optimizer)
        norm = total_norm(self.params, self.cfg.gradient_clip_norm, self.device)
        # the one host sync per optimizer step (see module notes); min over ranks: any rank's
        # non-finite loss or stop request counts for all
        go_on = self._flag[0 if self.stop.requested else 1]  # device constants: no host copy per step
        flags = all_reduce(torch.stack([group_ok.float(), torch.isfinite(norm).float(), go_on]), "min")
        loss_ok, grad_ok, go_on_all = (bool(v) for v in flags.tolist())
        self.stop_all = self.stop_all or not go_on_all
        stepped = False
        if self.scaler.is_enabled():
            if loss_ok:
                self.scaler.step(self.optimizer)
                stepped = grad_ok
            self.scaler.update()
            bad = not loss_ok
        else:
            if loss_ok and grad_ok:
                self.optimizer.step()
                stepped = True
            bad = not stepped
        self.optimizer.zero_grad(set_to_none=True)
        p = self.progress
        p.global_step += 1
        if stepped:
            self.scheduler.step()
            p.nonfinite_consecutive = 0
            if self.ema:
                self.ema.update()
        if bad:
            p.nonfinite_total += 1
            p.nonfinite_consecutive += 1
            if p.nonfinite_consecutive >= self.cfg.max_nonfinite_steps:
                last = self.files.last
                raise MigtError(
                    f"training diverged: {p.nonfinite_consecutive} optimizer steps in a row with a "
                    f"non-finite loss or gradient (epoch {epoch}, global step {p.global_step}); "
                    f"parameters were not updated on those steps. Last good checkpoint: "
                    f"{last if last.is_file() else 'none yet'}. Try a lower optimizer.lr or check the data "
                    f"(trainer.max_nonfinite_steps={self.cfg.max_nonfinite_steps})"
                )
        return bad

    # -- one epoch --------------------------------------------------------------------------------
    def _train_epoch(self, epoch: int) -> dict[str, Any]:
        """Run one epoch (or its remainder after a mid-epoch resume); returns the train part of the record."""
        p = self.progress
        mid = p.mid_epoch if p.mid_epoch and p.mid_epoch["epoch"] == epoch else None
        self.sampler.set_epoch(epoch, mid["position"] if mid else 0)
        sums = EpochSums(self.device, mid, self.is_main)
        n_batches = len(self.sampler)
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        bar = progress_bar(self.cfg.progress and self.is_main, epoch, self.cfg.max_epochs, n_batches, self.sampler.position)
        batches = iter(self.sampler)
        try:
            while self.sampler.position < n_batches:
                group_ok = self._accumulate(batches, sums, bar)
                sums.nonfinite += self._optimizer_step(group_ok, epoch)
                if p.global_step % self.cfg.log_every_n_steps == 0:
                    self._log_window(epoch, sums, bar)
                if self.stop_all:  # any rank was asked to stop: save the epoch so far, then raise RunStopped
                    p.mid_epoch = sums.mid_epoch(epoch, self.sampler.position)
                    self.files.save_last(self.state.state_dict())
                    self._interrupt()
        finally:
            if bar is not None:
                bar.close()
        p.mid_epoch = None
        return sums.result()

    def _accumulate(self, batches: Iterator[torch.Tensor], sums: EpochSums, bar: Any) -> torch.Tensor:
        """Forward and backward over the next trainer.gradient_accumulation_steps micro-batches, each
        weighted by its share of the group's samples over all ranks (the gradient of the group's mean
        loss); -> whether every loss was finite. Gradients are all-reduced on the last one only."""
        first, world, dev = self.sampler.position, self.runtime.dist.world_size, self.device
        group = [next(batches) for _ in range(min(self.cfg.gradient_accumulation_steps, len(self.sampler) - first))]
        n_group = sum(self.sampler.global_size(first + i) for i in range(len(group)))
        group_ok = torch.ones((), dtype=torch.bool, device=dev)
        for i, rows in enumerate(group):
            n = len(rows)
            if n == 0:  # the epoch's short last batch has no row for this rank: a weight-0
                rows = self.data.splits["train"][:1]  # step keeps it in the gradient all-reduce
            sync = i == len(group) - 1 or world == 1
            with contextlib.nullcontext() if sync else self.net.no_sync():
                _, loss = loss_step(self.net, self.loss_fn, gather(self.data, rows, dev), self.precision)
                self.scaler.scale(loss * (n * world / n_group)).backward()
            group_ok &= sums.add(loss, n)
            if bar is not None:
                bar.update(1)
        return group_ok

    def _log_window(self, epoch: int, sums: EpochSums, bar: Any) -> None:
        """The training loss and speed since the last log line, to the logger and the progress bar."""
        dt = max(time.perf_counter() - sums.window_t0, 1e-9)
        lr = self.scheduler.get_last_lr()[0]
        metrics = {"train/loss": sums.window.mean(), "train/lr": lr,
                   "train/samples_per_second": sums.window_samples / dt, "epoch": epoch}
        self._log(metrics, self.progress.global_step)
        if bar is not None:
            bar.set_postfix(loss=f"{metrics['train/loss']:.4f}", lr=f"{lr:.2e}", sps=f"{metrics['train/samples_per_second']:.0f}")
        sums.new_window()

    def validate(self, split: str = "val") -> Validation:
        """The split's loss, metrics and forecasts (Validation), with the averaged weights when
        trainer.ema_decay is set."""
        if self.ema:
            with self.ema.swapped_in():
                return self._validate(split)
        return self._validate(split)

    def _validate(self, split: str) -> Validation:
        """Each rank forecasts its contiguous shard; the loss sums are reduced and the forecasts
        gathered in row order, so every rank gets the single-process loss and metrics."""
        rows = self.data.splits[split]
        mine = shard(rows, self.runtime.dist)
        res = infer(self.model, self.data, mine, self.cfg.eval_batch_size, self.device, self.precision, self.loss_fn,
                    progress=split if self.cfg.progress and self.is_main else None)
        loss_sum = all_reduce(torch.tensor(res.loss * len(mine), dtype=torch.float64, device=self.device))
        q, y = all_gather_rows(res.quantiles), all_gather_rows(res.targets)
        metrics = quantile_metrics(q, y, self.levels, self.data.horizon_names)
        if is_pooled(self.data):  # which instrument a change of the pooled val loss comes from
            metrics["per_instrument"] = instrument_scores(self.data, rows, q, y, self.levels)
        return Validation(float(loss_sum) / len(rows), metrics, q, y)

    def _stop_requested(self) -> bool:
        """Whether any rank has been asked to stop (a collective under DDP)."""
        local = torch.tensor(1.0 if self.stop.requested or self.stop_all else 0.0, device=self.device)
        self.stop_all = bool(all_reduce(local, "max"))
        return self.stop_all

    # -- fit --------------------------------------------------------------------------------------
    def _start(self) -> None:
        path = self.files.resume_path(self.cfg.resume)
        if path is None:
            seed_everything(self.seed, self.runtime.dist.rank)
            stats = (*self.data.feature_stats("train"), *self.data.target_stats("train"))
            self.model.set_scaling(*(t.to(self.device) for t in stats))
            if getattr(self.model, "vol_anchor", False):  # the anchored model starts at the train quantiles of y / sigma
                self.model.set_anchor_shape(self.data.anchored_quantiles(self.levels).to(self.device))
                if self.ema:  # the average starts from the weights training starts from
                    self.ema.load([p.detach() for p in self.params], 0)
            # max_epochs 0 evaluates the initial weights: they are epoch 0, and best.pt
            if self.cfg.validate_before_training or self.cfg.max_epochs == 0:
                self._validate_initial()
            return
        self.state.restore(path)
        self.files.after_restore(path)
        p = self.progress
        where = f"epoch {p.epoch}" + (f", batch {p.mid_epoch['position']} of epoch {p.mid_epoch['epoch']}" if p.mid_epoch else "")
        self._info("resumed from %s at %s (global step %d)", path, where, p.global_step)

    def _validate_initial(self) -> None:
        """Epoch 0: the initial weights' val loss enters early stopping, the checkpoints and history.json (no
        training figures), so training that does not help on val cannot make the model worse."""
        t0 = time.perf_counter()
        val = self.validate("val")
        improved = self.early.update(val.loss, 0)
        p = self.progress
        p.history.append(epoch_record(0, p.global_step, self.scheduler.get_last_lr()[0], val.loss, val.metrics,
                                      time.perf_counter() - t0))
        self.files.write_epoch(self.state.state_dict(), 0, val.loss, improved)
        if self.is_main:
            write_history(self.run_dir, p.history)
        self._info("epoch 0 (initial weights): val loss %.6f", val.loss)
        if "per_instrument" in val.metrics:
            self._info("epoch 0: val pinball by instrument: %s", instrument_summary(val.metrics["per_instrument"]))

    def _end_epoch(self, epoch: int, train: dict[str, Any], seconds: float) -> None:
        lr = self.scheduler.get_last_lr()[0]
        val = self.validate("val")
        val_loss, val_metrics = val.loss, val.metrics
        self.scheduler.epoch_end()
        diverged = not math.isfinite(val_loss) or val_loss > divergence.FACTOR * self.zero_loss
        best_before = (self.early.best_epoch, self.early.best)
        improved = self.early.update(val_loss, epoch)
        p = self.progress
        p.epoch = epoch
        record = epoch_record(epoch, p.global_step, lr, val_loss, val_metrics, seconds, train)
        p.history.append(record)
        if diverged:  # history says what happened; checkpoints keep the last sane epoch
            if self.is_main:
                write_history(self.run_dir, p.history)
            divergence.check(epoch, val_loss, self.zero_loss, *best_before, self.files.directory / "best.pt")
        self.files.write_epoch(self.state.state_dict(), epoch, val_loss, improved)
        if self.is_main:
            write_history(self.run_dir, p.history)
        self._info("epoch %d/%d: train loss %.6g, val loss %.6g (%.2fx the training-mean forecast's)%s, "
                   "lr %.3g, %.1f s, %.0f samples/s", epoch, self.cfg.max_epochs, train["train_loss"], val_loss,
                   val_loss / self.zero_loss, " (best)" if improved else "", lr, record["seconds"],
                   record["samples_per_second"])
        if "per_instrument" in val_metrics:
            self._info("epoch %d: val pinball by instrument: %s", epoch, instrument_summary(val_metrics["per_instrument"]))
        self._log({"val/loss": val_loss, "val/pinball_loss": val_metrics["pinball_loss"],
                   "val/crps": val_metrics["crps"], "val/calibration_error": val_metrics["calibration_error"],
                   "train/epoch_loss": train["train_loss"], "epoch": epoch}, p.global_step)

    def fit(self) -> FitResult:
        self._start()
        p = self.progress
        self.zero_loss = divergence.zero_forecast_loss(self.loss_fn, self.model, self.data, len(self.levels))
        with self.stop:
            while p.epoch < self.cfg.max_epochs and not self.early.should_stop:
                epoch = p.epoch + 1
                t0 = time.perf_counter()
                seconds_before = p.mid_epoch["seconds"] if p.mid_epoch and p.mid_epoch["epoch"] == epoch else 0.0
                train = self._train_epoch(epoch)
                self._end_epoch(epoch, train, seconds_before + time.perf_counter() - t0)
                if self._stop_requested():
                    self._interrupt()
        stopped_early = self.early.should_stop and p.epoch < self.cfg.max_epochs
        if stopped_early:
            self._info("early stopping after epoch %d (best epoch %d, val loss %.6f)",
                       p.epoch, self.early.best_epoch, self.early.best)
        best = self.files.directory / "best.pt"
        return FitResult(best_val_loss=self.early.best, best_epoch=self.early.best_epoch, epochs_run=p.epoch,
                         stopped_early=stopped_early, nonfinite_steps=p.nonfinite_total, history=p.history,
                         best_checkpoint=best if best.is_file() else None)


def _optimizer(optimizer: Callable, named: list, body_lr_scale: float, instrument_decay: float = 0.0):
    """The optimizer over the named (trainable) parameters: the output heads at the configured lr, the rest of
    the model (the body: embeddings, attention, pooling) at lr x body_lr_scale; one group when the scale is 1
    (the reference setup) or 0 (the body is frozen and not among them). On targets as noisy as returns, a body
    at the full lr adds more noise than signal to the heads' correction of the volatility anchor (docs/results.md,
    "What training adds"). instrument_decay > 0 (a pooled run): each instrument's deviation from the heads' shared
    context weights in a last group with that weight decay, which pulls the instruments towards one correction of
    their anchors (partial pooling; val lower than with free deviations over three test periods of the E-minis:
    docs/results.md, "2026-12-07, late night")."""
    def deviation(name: str) -> bool:
        return instrument_decay > 0 and name.startswith(DEVIATIONS)

    own = [p for n, p in named if deviation(n)]
    rest = [(n, p) for n, p in named if not deviation(n)]
    if body_lr_scale in (0.0, 1.0):
        groups = [{"params": [p for _, p in rest]}]
    else:
        groups = [{"params": [p for n, p in rest if n.startswith(HEADS)]},
                  {"params": [p for n, p in rest if not n.startswith(HEADS)]}]
    if own:
        groups.append({"params": own, "weight_decay": instrument_decay})
    opt = optimizer(groups)
    if body_lr_scale not in (0.0, 1.0):
        opt.param_groups[1]["lr"] = opt.param_groups[1]["lr"] * body_lr_scale
    return opt
