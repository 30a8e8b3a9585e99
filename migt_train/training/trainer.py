"""Plain-PyTorch trainer: AMP on CUDA, gradient accumulation, clipping, early stopping, top-k
checkpoints and exact resume.

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
- Every file write and logger call goes through _on_main (DDP: rank 0 only).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Protocol

import numpy as np
import torch
from torch import nn

from migt_train.data.market import BATCH_KEYS, TIME_KEYS, MarketData
from migt_train.errors import MigtError
from migt_train.evaluation.metrics import quantile_metrics
from migt_train.io import save_torch, write_json
from migt_train.training.checkpoint import (
    FORMAT_VERSION,
    TopK,
    capture_rng,
    load_checkpoint,
    restore_rng,
    seed_everything,
)
from migt_train.training.cpu_memory import retain_freed_memory
from migt_train.training.distributed import is_main_process, resolve_device
from migt_train.training.early_stopping import EarlyStopping
from migt_train.training.sampler import EpochSampler
from migt_train.training.schedulers import Scheduler

log = logging.getLogger(__name__)

@dataclass
class TrainerConfig:
    """The `trainer.*` config keys and their defaults (the user's values); also the config schema."""

    max_epochs: int = 100
    batch_size: int = 128
    gradient_accumulation_steps: int = 2
    mixed_precision: bool = True  # only acts on CUDA
    amp_dtype: str = "float16"
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


TRAINER_DEFAULTS: dict[str, Any] = asdict(TrainerConfig())



class MetricsLogger(Protocol):
    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...
    def finish(self) -> None: ...


class TrainingInterrupted(MigtError):
    """SIGINT/SIGTERM: state saved to last.pt; the message says how to resume."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum


@dataclass
class FitResult:
    best_val_loss: float
    best_epoch: int
    epochs_run: int  # epochs completed in total, including those before a resume
    stopped_early: bool
    nonfinite_steps: int  # skipped optimizer steps over the whole run
    history: list[dict[str, Any]] = field(default_factory=list)
    best_checkpoint: Path | None = None


def validate_trainer_config(cfg: Mapping[str, Any]) -> None:
    """Raise MigtError naming the first bad `trainer.*` value."""
    cfg = {**TRAINER_DEFAULTS, **cfg}  # a key left out takes its default

    def bad(key: str, rule: str) -> MigtError:
        return MigtError(f"config key 'trainer.{key}': {rule} (got {cfg[key]!r})")

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    for key in ("max_epochs", "batch_size", "gradient_accumulation_steps", "log_every_n_steps",
                "eval_batch_size", "max_nonfinite_steps"):
        if not is_int(cfg[key]) or cfg[key] < 1:
            raise bad(key, "must be an integer >= 1")
    for key in ("early_stopping_patience", "save_top_k"):
        if not is_int(cfg[key]) or cfg[key] < 0:
            raise bad(key, "must be an integer >= 0")
    if cfg["limit_train_batches"] is not None and (not is_int(cfg["limit_train_batches"]) or cfg["limit_train_batches"] < 1):
        raise bad("limit_train_batches", "must be null or an integer >= 1")
    for key in ("gradient_clip_norm", "early_stopping_min_delta"):
        v = cfg[key]
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0):
            raise bad(key, "must be null or a number >= 0")
    v = cfg["ema_decay"]
    if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1):
        raise bad("ema_decay", "must be null or a number in (0, 1)")
    if cfg["amp_dtype"] not in ("float16", "bfloat16"):
        raise bad("amp_dtype", "must be float16 or bfloat16")
    if cfg["device"] not in ("auto", "cpu", "cuda") and not str(cfg["device"]).startswith("cuda:"):
        raise bad("device", "must be auto, cpu or cuda")
    if not isinstance(cfg.get("validate_before_training", False), bool):
        raise bad("validate_before_training", "must be true or false")
    if not isinstance(cfg["mixed_precision"], bool) or not isinstance(cfg["progress"], bool):
        key = "mixed_precision" if not isinstance(cfg["mixed_precision"], bool) else "progress"
        raise bad(key, "must be true or false")


def _json_plain(obj: Any) -> Any:
    """Plain containers only, so checkpoints load with weights_only=True."""
    if obj is None:
        return None
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(obj, (DictConfig, ListConfig)):
            obj = OmegaConf.to_container(obj, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    return json.loads(json.dumps(obj, default=str))


def _total_norm(params: list[torch.Tensor], max_norm: float | None, device: torch.device) -> torch.Tensor:
    """Global grad norm (clipping to max_norm when set); stays on device, no sync."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros((), device=device)
    if max_norm:
        return torch.nn.utils.clip_grad_norm_(params, max_norm)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads]))


class Trainer:
    """Train `model` on `data` (train split), validate on the val split every epoch.

    optimizer: params -> Optimizer (a hydra `_partial_`); scheduler: Optimizer -> Scheduler (partial).
    trainer_cfg: the `trainer.*` keys of TRAINER_DEFAULTS.
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
        logger: MetricsLogger | None = None,
        config: Mapping[str, Any] | None = None,
        **trainer_cfg: Any,
    ) -> None:
        unknown = sorted(set(trainer_cfg) - set(TRAINER_DEFAULTS))
        if unknown:
            raise MigtError(f"config key 'trainer.{unknown[0]}': unknown option (known: {', '.join(TRAINER_DEFAULTS)})")
        self.cfg = {**TRAINER_DEFAULTS, **trainer_cfg}
        validate_trainer_config(self.cfg)
        self.levels = [float(v) for v in levels]
        loss_levels = getattr(loss_fn, "quantiles", None)
        if loss_levels is not None and not np.allclose(list(loss_levels), self.levels):
            raise MigtError(f"loss.quantiles {list(loss_levels)} differ from the quantile levels {self.levels}")
        if "val" not in data.splits or len(data.splits["val"]) == 0:
            raise MigtError("data: the val split is empty; the trainer needs it for early stopping")
        if len(data.splits.get("train", [])) == 0:
            raise MigtError("data: the train split is empty")

        self.data = data
        self.run_dir = Path(run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.seed = int(seed)
        self.logger = logger
        self.config = _json_plain(config)
        self.is_main = is_main_process()

        self.device = resolve_device(self.cfg["device"])
        if self.device.type == "cpu":
            retain_freed_memory()
        self.use_amp = bool(self.cfg["mixed_precision"]) and self.device.type == "cuda"
        self.amp_dtype = torch.bfloat16 if self.cfg["amp_dtype"] == "bfloat16" else torch.float16
        # bf16 has fp32's exponent range: no loss scaling needed
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp and self.amp_dtype == torch.float16)

        self.model = model.to(self.device)
        self.loss_fn = loss_fn.to(self.device)
        named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        self.param_names, self.params = [n for n, _ in named], [p for _, p in named]
        # exponential moving average of the weights; validation, best/top-k and the test use it
        self.ema = [p.detach().clone() for p in self.params] if self.cfg["ema_decay"] else None
        self.ema_updates = 0
        self.optimizer = optimizer(self.params)
        self.scheduler = scheduler(self.optimizer)
        self.sampler = EpochSampler(data.splits["train"], self.cfg["batch_size"], self.seed, self.cfg["limit_train_batches"])
        self.early = EarlyStopping(self.cfg["early_stopping_patience"], self.cfg["early_stopping_min_delta"] or 0.0)
        self.topk = TopK(self.ckpt_dir, self.cfg["save_top_k"])

        self.epoch = 0  # completed epochs
        self.global_step = 0  # optimizer-step boundaries, skipped ones included
        self.history: list[dict[str, Any]] = []
        self.nonfinite_total = 0
        self.nonfinite_consecutive = 0
        self.mid_epoch: dict[str, Any] | None = None
        self._stop_signal: int | None = None

    # -- main-process point -------------------------------------------------------------------
    def _on_main(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs) if self.is_main else None

    def _log(self, metrics: dict[str, float], step: int) -> None:
        if self.logger is not None:
            self._on_main(self.logger.log_metrics, metrics, step)

    # -- state --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        m = self.model
        weights = m.state_dict()
        return {
            "format_version": FORMAT_VERSION,
            # "model" holds the weights to predict with: the average where there is one
            "model": {**weights, **dict(zip(self.param_names, self.ema))} if self.ema else weights,
            "train_model": weights if self.ema else None,
            "ema_updates": self.ema_updates,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "early_stopping": self.early.state_dict(),
            "epoch": self.epoch,
            "global_step": self.global_step,
            "history": self.history,
            "rng": capture_rng(),
            "sampler": self.sampler.state_dict(),
            "mid_epoch": self.mid_epoch,
            "nonfinite": {"total": self.nonfinite_total, "consecutive": self.nonfinite_consecutive},
            "topk": self.topk.state_dict(),
            "config": self.config,
            "trainer": _json_plain(self.cfg),
            "seed": self.seed,
            "feature_names": list(self.data.feature_names),
            "horizon_names": list(self.data.horizon_names),
            "levels": self.levels,
            "input_scaling": {"mean": m.input_mean.detach().cpu(), "std": m.input_std.detach().cpu()},
            "target_scaling": {"mean": m.target_mean.detach().cpu(), "std": m.target_std.detach().cpu()},
        }

    def _restore(self, path: Path) -> None:
        ckpt = load_checkpoint(path)
        for key, mine in (("levels", self.levels), ("feature_names", list(self.data.feature_names)),
                          ("horizon_names", list(self.data.horizon_names))):
            theirs = ckpt[key]
            same = np.allclose(theirs, mine) if key == "levels" and len(theirs) == len(mine) else theirs == mine
            if not same:
                raise MigtError(f"{path}: incompatible checkpoint ({key} {theirs} != this run's {mine})")
        try:
            ema_in_ckpt = ckpt.get("train_model") is not None
            if ema_in_ckpt != bool(self.ema):
                raise ValueError(f"trainer.ema_decay is {self.cfg['ema_decay']} but the checkpoint was "
                                 f"written {'with' if ema_in_ckpt else 'without'} weight averaging")
            self.model.load_state_dict(ckpt["train_model"] if self.ema else ckpt["model"])
            if self.ema:
                for e, name in zip(self.ema, self.param_names):
                    e.copy_(ckpt["model"][name])
                self.ema_updates = int(ckpt["ema_updates"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.scheduler.load_state_dict(ckpt["scheduler"])
            if ckpt["scaler"] is not None and self.scaler.is_enabled():
                self.scaler.load_state_dict(ckpt["scaler"])
            self.early.load_state_dict(ckpt["early_stopping"])
            self.topk.load_state_dict(ckpt["topk"])
            self.sampler.load_state_dict(ckpt["sampler"])
            self.epoch = int(ckpt["epoch"])
            self.global_step = int(ckpt["global_step"])
            self.history = list(ckpt["history"])
            self.nonfinite_total = int(ckpt["nonfinite"]["total"])
            self.nonfinite_consecutive = int(ckpt["nonfinite"]["consecutive"])
            self.mid_epoch = ckpt["mid_epoch"]
            restore_rng(ckpt["rng"])
        except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as e:
            raise MigtError(f"{path}: incompatible checkpoint ({type(e).__name__}: {str(e).splitlines()[0][:300]})") from e
        if path.resolve() == (self.ckpt_dir / "last.pt").resolve():
            self._on_main(self.topk.remove_untracked)
        else:  # foreign checkpoint: only track top-k files that exist in this run's directory
            self.topk.entries = [e for e in self.topk.entries if (self.ckpt_dir / e[2]).is_file()]
        where = f"epoch {self.epoch}" + (f", batch {self.mid_epoch['position']} of epoch {self.mid_epoch['epoch']}" if self.mid_epoch else "")
        self._on_main(log.info, "resumed from %s at %s (global step %d)", path, where, self.global_step)

    def _resume_path(self) -> Path | None:
        resume = self.cfg["resume"]
        if resume in (None, "", False):
            return None
        if resume == "auto":
            last = self.ckpt_dir / "last.pt"
            if last.is_file():
                return last
            self._on_main(log.info, "trainer.resume=auto: no checkpoint at %s, starting fresh", last)
            return None
        return Path(resume)

    def _write_checkpoints(self, val_loss: float | None, improved: bool) -> None:
        state = self.state_dict()
        dropped: list[str] = []
        if val_loss is not None:
            name, dropped = self.topk.offer(val_loss, self.epoch)
            state["topk"] = self.topk.state_dict()
            if name is not None:
                save_torch(self.ckpt_dir / name, state)
            if improved:
                save_torch(self.ckpt_dir / "best.pt", state)
        # last.pt last, so that everything it references exists; deletions after it
        save_torch(self.ckpt_dir / "last.pt", state)
        for n in dropped:
            (self.ckpt_dir / n).unlink(missing_ok=True)

    def _write_history(self) -> None:
        write_json(self.run_dir / "history.json", {"epochs": self.history})

    # -- signals ------------------------------------------------------------------------------
    def _install_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def handler(signum: int, frame: Any) -> None:
            if self._stop_signal is not None and signum == signal.SIGINT:
                raise KeyboardInterrupt  # second Ctrl-C: abort now
            self._stop_signal = signum

        old = {}
        for s in (signal.SIGINT, signal.SIGTERM):
            old[s] = signal.signal(s, handler)
        return old

    def _interrupt(self) -> None:
        signum = self._stop_signal or signal.SIGTERM
        last = self.ckpt_dir / "last.pt"
        self._on_main(self._write_history)
        raise TrainingInterrupted(
            f"training interrupted by {signal.Signals(signum).name} at epoch {self.epoch + (1 if self.mid_epoch else 0)}, "
            f"global step {self.global_step}; state saved to {last}. Resume with trainer.resume=auto "
            f"(same run directory, hydra.run.dir={self.run_dir}) or trainer.resume={last}",
            signum,
        )

    # -- steps --------------------------------------------------------------------------------
    def _to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: batch[k].to(self.device, non_blocking=True) for k in BATCH_KEYS}

    def _forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        time_info = {k: batch[k] for k in TIME_KEYS}
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
            return self.model(batch["features"], batch["mask"], time_info)

    def _std_targets(self, y: torch.Tensor) -> torch.Tensor:
        return (y.float() - self.model.target_mean) / self.model.target_std

    def _train_epoch(self, epoch: int) -> dict[str, Any]:
        """Run one epoch (or its remainder after a mid-epoch resume); returns the train part of the record."""
        mid = self.mid_epoch if self.mid_epoch and self.mid_epoch["epoch"] == epoch else None
        self.sampler.set_epoch(epoch, mid["position"] if mid else 0)
        dev = self.device
        loss_sum = mid["loss_sum"].to(dev) if mid else torch.zeros((), dtype=torch.float64, device=dev)
        finite_n = mid["finite_samples"].to(dev) if mid else torch.zeros((), dtype=torch.float64, device=dev)
        train_samples = mid["train_samples"] if mid else 0
        nonfinite_epoch = mid["nonfinite_steps"] if mid else 0
        seconds_before = mid["seconds"] if mid else 0.0
        win_sum = torch.zeros((), dtype=torch.float64, device=dev)
        win_n = torch.zeros((), dtype=torch.float64, device=dev)
        win_samples, win_t0 = 0, time.perf_counter()

        accum = self.cfg["gradient_accumulation_steps"]
        n_batches = len(self.sampler)
        clip = self.cfg["gradient_clip_norm"]
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        bar = self._progress(epoch, n_batches, self.sampler.position)
        t0 = time.perf_counter()
        it = iter(self.sampler)
        try:
            while self.sampler.position < n_batches:
                start = self.sampler.position
                group = [next(it) for _ in range(min(accum, n_batches - start))]
                n_group = sum(len(r) for r in group)
                group_ok = torch.ones((), dtype=torch.bool, device=dev)
                for rows in group:
                    batch = self._to_device(self.data.batch(rows))
                    out = self._forward(batch)
                    loss = self.loss_fn(out["quantiles_std"], self._std_targets(batch["targets"])).loss
                    finite = torch.isfinite(loss)
                    group_ok &= finite
                    n = len(rows)
                    self.scaler.scale(loss * (n / n_group)).backward()
                    contrib = torch.where(finite, loss.detach().double() * n, 0.0)
                    loss_sum += contrib
                    win_sum += contrib
                    fn = finite.double() * n
                    finite_n += fn
                    win_n += fn
                    train_samples += n
                    win_samples += n
                    if bar is not None:
                        bar.update(1)

                if self.scaler.is_enabled():
                    self.scaler.unscale_(self.optimizer)
                norm = _total_norm(self.params, clip, dev)
                # the one host sync per optimizer step (see module notes)
                loss_ok, grad_ok = torch.stack([group_ok, torch.isfinite(norm)]).tolist()
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
                self.global_step += 1
                if stepped:
                    self.scheduler.step()
                    self.nonfinite_consecutive = 0
                    if self.ema:
                        self._update_ema()
                if bad:
                    nonfinite_epoch += 1
                    self.nonfinite_total += 1
                    self.nonfinite_consecutive += 1
                    if self.nonfinite_consecutive >= self.cfg["max_nonfinite_steps"]:
                        last = self.ckpt_dir / "last.pt"
                        raise MigtError(
                            f"training diverged: {self.nonfinite_consecutive} optimizer steps in a row with a "
                            f"non-finite loss or gradient (epoch {epoch}, global step {self.global_step}); "
                            f"parameters were not updated on those steps. Last good checkpoint: "
                            f"{last if last.is_file() else 'none yet'}. Try a lower optimizer.lr or check the data "
                            f"(trainer.max_nonfinite_steps={self.cfg['max_nonfinite_steps']})"
                        )

                if self.global_step % self.cfg["log_every_n_steps"] == 0:
                    dt = max(time.perf_counter() - win_t0, 1e-9)
                    s, c = torch.stack([win_sum, win_n]).tolist()
                    lr = self.scheduler.get_last_lr()[0]
                    metrics = {"train/loss": s / c if c else math.nan, "train/lr": lr,
                               "train/samples_per_second": win_samples / dt, "epoch": epoch}
                    self._log(metrics, self.global_step)
                    if bar is not None:
                        bar.set_postfix(loss=f"{metrics['train/loss']:.4f}", lr=f"{lr:.2e}",
                                        sps=f"{metrics['train/samples_per_second']:.0f}")
                    win_sum.zero_()
                    win_n.zero_()
                    win_samples, win_t0 = 0, time.perf_counter()

                if self._stop_signal is not None:
                    self.mid_epoch = {
                        "epoch": epoch,
                        "position": self.sampler.position,
                        "loss_sum": loss_sum.detach().cpu(),
                        "finite_samples": finite_n.detach().cpu(),
                        "train_samples": train_samples,
                        "nonfinite_steps": nonfinite_epoch,
                        "seconds": seconds_before + time.perf_counter() - t0,
                    }
                    self._on_main(save_torch, self.ckpt_dir / "last.pt", self.state_dict())
                    self._interrupt()
        finally:
            if bar is not None:
                bar.close()
        train_seconds = seconds_before + time.perf_counter() - t0
        s, c = torch.stack([loss_sum, finite_n]).tolist()
        self.mid_epoch = None
        return {
            "train_loss": s / c if c else math.nan,
            "train_samples": train_samples,
            "nonfinite_steps": nonfinite_epoch,
            "train_seconds": train_seconds,
        }

    def _progress(self, epoch: int, total: int, initial: int) -> Any:
        if not (self.cfg["progress"] and self.is_main):
            return None
        from tqdm.auto import tqdm

        return tqdm(total=total, initial=initial, desc=f"epoch {epoch}/{self.cfg['max_epochs']}",
                    file=sys.stderr, leave=False, dynamic_ncols=True)

    @torch.no_grad()
    def _update_ema(self) -> None:
        # the average's horizon grows from ~10 updates to 1 / (1 - ema_decay), so early averages are
        # not dominated by the initial weights
        self.ema_updates += 1
        decay = min(self.cfg["ema_decay"], (1 + self.ema_updates) / (10 + self.ema_updates))
        torch._foreach_lerp_(self.ema, self.params, 1.0 - decay)

    @contextlib.contextmanager
    def _ema_weights(self) -> Iterator[None]:
        """The model holds the averaged weights inside the block (no-op without ema_decay)."""
        if not self.ema:
            yield
            return
        with torch.no_grad():
            train = [p.detach().clone() for p in self.params]
            torch._foreach_copy_(self.params, self.ema)
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(self.params, train)

    @torch.no_grad()
    def evaluate(self, split: str = "val") -> tuple[float, dict[str, Any]]:
        """Standardised loss (the training objective) and quantile_metrics in log-return units, with the
        averaged weights when trainer.ema_decay is set."""
        with self._ema_weights():
            return self._evaluate(split)

    def _evaluate(self, split: str) -> tuple[float, dict[str, Any]]:
        self.model.eval()
        rows = self.data.splits[split]
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        qs, ys = [], []
        for chunk in rows.split(self.cfg["eval_batch_size"]):
            batch = self._to_device(self.data.batch(chunk))
            out = self._forward(batch)
            res = self.loss_fn(out["quantiles_std"].float(), self._std_targets(batch["targets"]))
            loss_sum += res.loss.double() * len(chunk)
            qs.append(out["quantiles"].float())
            ys.append(batch["targets"].float())
        val_loss = float(loss_sum) / len(rows)
        metrics = quantile_metrics(torch.cat(qs), torch.cat(ys), self.levels, self.data.horizon_names)
        return val_loss, metrics

    # -- fit ----------------------------------------------------------------------------------
    def _fresh_start(self) -> None:
        seed_everything(self.seed)
        stats = (*self.data.feature_stats("train"), *self.data.target_stats("train"))
        self.model.set_scaling(*(t.to(self.device) for t in stats))
        if getattr(self.model, "vol_anchor", False):  # the anchored model starts at the train quantiles of y / sigma
            self.model.set_anchor_shape(self.data.anchored_quantiles(self.levels).to(self.device))

    def _validate_initial(self) -> None:
        """Epoch 0: the initial weights' val loss enters early stopping and the checkpoints (not the history,
        which records trained epochs)."""
        val_loss, _ = self.evaluate("val")
        improved = self.early.update(val_loss, 0)
        self._on_main(self._write_checkpoints, val_loss, improved)
        self._on_main(log.info, "epoch 0 (initial weights): val loss %.6f", val_loss)

    def _result(self, stopped_early: bool) -> FitResult:
        best = self.ckpt_dir / "best.pt"
        return FitResult(
            best_val_loss=self.early.best,
            best_epoch=self.early.best_epoch,
            epochs_run=self.epoch,
            stopped_early=stopped_early,
            nonfinite_steps=self.nonfinite_total,
            history=self.history,
            best_checkpoint=best if best.is_file() else None,
        )

    def fit(self) -> FitResult:
        path = self._resume_path()
        if path is not None:
            self._restore(path)
        else:
            self._fresh_start()
            if self.cfg.get("validate_before_training"):
                self._validate_initial()
        self._stop_signal = None
        old_handlers = self._install_signals()
        try:
            while self.epoch < self.cfg["max_epochs"] and not self.early.should_stop:
                epoch = self.epoch + 1
                t0 = time.perf_counter()
                seconds_before = self.mid_epoch["seconds"] if self.mid_epoch and self.mid_epoch["epoch"] == epoch else 0.0
                train = self._train_epoch(epoch)
                lr = self.scheduler.get_last_lr()[0]
                val_loss, val_metrics = self.evaluate("val")
                self.scheduler.epoch_end()
                improved = self.early.update(val_loss, epoch)
                self.epoch = epoch
                record = {
                    "epoch": epoch,
                    "global_step": self.global_step,
                    "lr": lr,
                    "train_loss": train["train_loss"],
                    "val_loss": val_loss,
                    "val_metrics": val_metrics,
                    "seconds": seconds_before + time.perf_counter() - t0,
                    "samples_per_second": train["train_samples"] / max(train["train_seconds"], 1e-9),
                    "train_samples": train["train_samples"],
                    "nonfinite_steps": train["nonfinite_steps"],
                }
                self.history.append(record)
                self._on_main(self._write_checkpoints, val_loss, improved)
                self._on_main(self._write_history)
                self._on_main(log.info, "epoch %d/%d: train loss %.6f, val loss %.6f%s, lr %.3g, %.1f s, %.0f samples/s",
                              epoch, self.cfg["max_epochs"], train["train_loss"], val_loss, " (best)" if improved else "",
                              lr, record["seconds"], record["samples_per_second"])
                self._log(
                    {"val/loss": val_loss, "val/pinball_loss": val_metrics["pinball_loss"],
                     "val/crps": val_metrics["crps"], "val/calibration_error": val_metrics["calibration_error"],
                     "train/epoch_loss": train["train_loss"], "epoch": epoch},
                    self.global_step,
                )
                if self._stop_signal is not None:
                    self._interrupt()
            stopped_early = self.early.should_stop and self.epoch < self.cfg["max_epochs"]
            if stopped_early:
                self._on_main(log.info, "early stopping after epoch %d (best epoch %d, val loss %.6f)",
                              self.epoch, self.early.best_epoch, self.early.best)
            return self._result(stopped_early)
        finally:
            for s, h in old_handlers.items():
                signal.signal(s, h)
