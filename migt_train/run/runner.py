"""What one Hydra job does: validate, load data, build, train, evaluate, and record the outcome."""

from __future__ import annotations

import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from migt_train.config.schema import resolved_container, validate
from migt_train.errors import RAISE_ERRORS, MigtError
from migt_train.utils.io import write_json, write_text
from migt_train.run.loggers import NullLogger
from migt_train.run.record import RunRecord, refuse_used_dir, remove_orphan_temps, where_line
from migt_train.run.stops import RunStopped, StopsRaise
from migt_train.training.runtime import Runtime, barrier, current_dist, init_distributed, seed_everything
from migt_train.sweep.trials import trial_number_of_job

log = logging.getLogger("migt_train")


def run(cfg: DictConfig) -> float:
    """Run one job; returns the sweep objective (best val loss, inf for a failed run)."""
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    in_sweep = hc.mode == RunMode.MULTIRUN
    trial = trial_number_of_job(hc)
    if in_sweep and current_dist().world_size > 1:
        print("error: a sweep (-m) under torchrun is not supported: run the sweep's workers as separate "
              "processes, each training on one device", file=sys.stderr)
        sys.exit(2)
    record = RunRecord(run_dir, trial_number=trial)
    _status = record.status
    try:
        with StopsRaise(run_dir) as stops:
            objective = train_and_evaluate(cfg, run_dir, record, stops)
    except RunStopped as e:
        # a stop requested by the user ends a sweep too, with the run left resumable
        _status("interrupted", str(e))
        if RAISE_ERRORS.get():
            raise
        print(f"interrupted: {e}", file=sys.stderr)
        sys.exit(128 + e.signum)
    except MigtError as e:
        _status("failed", str(e))  # a no-op unless this process owns the run dir
        if in_sweep:
            log.error("error: %s", e)
            return math.inf
        _to_log_file(f"error: {e}")
        if RAISE_ERRORS.get():
            raise
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        _status("interrupted", "interrupted")
        if RAISE_ERRORS.get():
            raise
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as e:
        _status("failed", f"{type(e).__name__}: {e}")
        if in_sweep:
            log.exception("trial failed; the sweep goes on")
            return math.inf
        raise
    _status("completed")
    return objective if math.isfinite(objective) else math.inf


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _to_log_file(message: str) -> None:
    """Record in run.log only: the console gets the message once, on stderr."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def _claim_run_dir(cfg: DictConfig, run_dir: Path, record: RunRecord, is_main: bool = True) -> None:
    """Lock (run_guard took it already for single runs; sweep jobs take it here), refuse a used dir
    for a fresh run, validate; status.json is ours once a fresh dir is locked, or a resume validated.
    Under torchrun rank 0 alone locks and owns the directory; the other ranks make the same checks."""
    if is_main:
        record.take()
    if refuse_used_dir(run_dir, cfg.trainer.resume):
        record.owned = is_main
    validate(cfg)
    if not is_main:
        return
    record.own()
    for orphan in remove_orphan_temps(run_dir):
        log.info("removed %s, left by a process that was killed while writing it", orphan)


def model_for_data(cfg: DictConfig, data: Any) -> bool:
    """Set model.n_instruments, model.n_variables and model.n_cross from a pooled market (its instruments; the
    cross inputs add variables and, with the anchor, the heads' cross moves); True when the config changed. One
    instrument leaves the model config as it is."""
    if data.n_instruments == 1:
        return False
    if "n_instruments" not in cfg.model:
        raise MigtError(f"model: {cfg.model.get('_target_')} takes no n_instruments, so it cannot train on several "
                        f"instruments ({', '.join(data.instruments)}); give data.path one file")
    changed = False
    for key, value in (("n_instruments", data.n_instruments), ("n_variables", data.n_features), ("n_cross", data.n_cross)):
        if cfg.model.get(key) != value:
            OmegaConf.update(cfg, f"model.{key}", value, force_add=True)
            changed = True
    if changed:
        log.info("model: %d instruments (%s), %d input variables", data.n_instruments, ", ".join(data.instruments),
                 data.n_features)
    return changed


def train_and_evaluate(cfg: DictConfig, run_dir: Path, record: RunRecord, stops: StopsRaise) -> float:
    import torch

    from migt_train.data import load_market
    from migt_train.evaluation.from_run import cross_body
    from migt_train.volatility.anchor import ANCHOR_FILE, anchor_json
    from migt_train.evaluation.report import evaluate_run
    from migt_train.training import Trainer, TrainerConfig, load_checkpoint

    t = cfg.trainer
    # run.py joins torchrun's group before Hydra starts; a caller composing the config itself joins here
    dist_env = init_distributed(torch.device("cpu") if t.device == "cpu" else None)
    _claim_run_dir(cfg, run_dir, record, dist_env.is_main)
    resolved = resolved_container(cfg)
    barrier()  # every rank has checked the directory before rank 0 writes into it
    if dist_env.is_main:
        write_text(run_dir / "config.yaml", OmegaConf.to_yaml(resolved))
    record.status("running")
    runtime = Runtime.create(t.device, t.mixed_precision, t.amp_dtype)
    seed_everything(cfg.seed, runtime.dist.rank)

    log.info("run directory: %s (%d process%s)", run_dir, runtime.dist.world_size,
             "es" if runtime.dist.world_size > 1 else "")
    t0 = time.time()
    data = load_market(cfg.data, cross_body=cross_body(cfg))  # a resumed older pooled run: its inputs as trained
    log.info(
        "data: %s, %d bars x %d features; samples train/val/test = %s (%.1fs)",
        data.source, *data.features.shape,
        "/".join(str(len(data.splits[k])) for k in ("train", "val", "test")), time.time() - t0,
    )
    if data.anchor_fit is not None and runtime.is_main:  # forecasts on other bars filter them with the training fit, never a refit
        write_json(run_dir / ANCHOR_FILE, anchor_json(data.anchor_fit))
    if data.rolls is not None and runtime.is_main:  # a file's contracts and roll dates travel with the run
        write_json(run_dir / "rolls.json", data.rolls)
        for name, rolls in (data.rolls.items() if data.instruments else [(None, data.rolls)]):
            if rolls and rolls.get("rolls"):
                log.info("rolls%s: %s", f" of {name}" if name else "",
                         ", ".join(f"{r['trading_day']} {r['from_contract']}->{r['to_contract']}" for r in rolls["rolls"]))
    if model_for_data(cfg, data):  # a pooled market sets the model's instruments and variables: recorded
        resolved = resolved_container(cfg)
        if runtime.is_main:
            write_text(run_dir / "config.yaml", OmegaConf.to_yaml(resolved))
    levels = [float(t) for t in cfg.quantiles.levels]
    model = instantiate(cfg.model)
    n_parameters = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info("model: %s, %s trainable parameters", type(model).__name__, f"{n_parameters:,}")

    # one logger run per job: rank 0's
    logger = (instantiate(cfg.logger, run_dir=run_dir, run_config=resolved, _recursive_=False)
              if runtime.is_main else NullLogger())
    trainer_cfg = TrainerConfig.from_mapping({**OmegaConf.to_container(t, resolve=True), "device": str(runtime.device)})
    exit_code = 1
    try:
        trainer = Trainer(
            model=model,
            data=data,
            loss_fn=instantiate(cfg.loss),
            optimizer=instantiate(cfg.optimizer),
            scheduler=instantiate(cfg.scheduler),
            run_dir=run_dir,
            seed=cfg.seed,
            levels=levels,
            config=trainer_cfg,
            logger=logger,
            run_config=resolved,
            runtime=runtime,
        )
        result = trainer.fit()
        if not runtime.is_main:  # the test evaluation runs once, on rank 0; the others wait for it
            barrier()
            exit_code = 0
            return float(result.best_val_loss)
        stops.phase = "during the final evaluation (training is finished; the resume only evaluates)"
        log.info("final evaluation: best.pt (epoch %d) on the test split", result.best_epoch)
        model.load_state_dict(load_checkpoint(run_dir / "checkpoints" / "best.pt")["model"])
        metrics = evaluate_run(
            run_dir,
            model,
            data,
            levels,
            fit_summary={
                "best_epoch": result.best_epoch,
                "best_val_loss": result.best_val_loss,
                "epochs_run": result.epochs_run,
                "stopped_early": result.stopped_early,
                "nonfinite_steps": result.nonfinite_steps,
                "n_parameters": n_parameters,
                "world_size": runtime.dist.world_size,
                "tag": cfg.tag,
                "trial_number": record.trial_number,  # Optuna trial of a sweep job, null otherwise
            },
            history_path=run_dir / "history.json",
            batch_size=cfg.evaluation.batch_size,
            device=runtime.device,
            conformal=cfg.evaluation.conformal,
            ewma_halflife=cfg.evaluation.ewma_halflife,
            precision=runtime.precision,
            progress=bool(cfg.trainer.progress),
        )
        test = metrics["test"]
        log.info(
            "test: pinball %.6g, crps %.6g, calibration error %.4f, skill vs climatology %.4f, "
            "oracle gap closed %s",
            test["pinball_loss"], test["crps"], test["calibration_error"],
            metrics["skill_vs_climatology"], _fmt(metrics.get("oracle_gap_closed")),
        )
        log.info(where_line(run_dir))
        logger.log_summary({f"test/{k}": v for k, v in test.items() if isinstance(v, float)})
        exit_code = 0
    finally:
        logger.finish(exit_code)
    barrier()  # rank 0 has evaluated (the other ranks wait here; a no-op in one process)
    return float(result.best_val_loss)
