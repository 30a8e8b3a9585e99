"""What one Hydra job does: validate, load data, build, train, evaluate, and record the outcome."""

from __future__ import annotations

import logging
import math
import sys
import time
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from migt_train.config import resolved_container, validate
from migt_train.errors import MigtError
from migt_train.io import write_json, write_text
from migt_train.runtime import Runtime, seed_everything
from migt_train.training.signals import TrainingInterrupted

log = logging.getLogger("migt_train")


def run(cfg: DictConfig) -> float:
    """Run one job; returns the sweep objective (best val loss, inf for a failed run)."""
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    in_sweep = hc.mode == RunMode.MULTIRUN
    started = time.time()
    try:
        objective = train_and_evaluate(cfg, run_dir)
    except TrainingInterrupted as e:
        # a stop requested by the user ends a sweep too, with the run left resumable
        _status(run_dir, "interrupted", started, str(e))
        print(f"interrupted: {e}", file=sys.stderr)
        sys.exit(128 + e.signum)
    except MigtError as e:
        _status(run_dir, "failed", started, str(e))
        if in_sweep:
            log.error("error: %s", e)
            return math.inf
        _to_log_file(f"error: {e}")
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        _status(run_dir, "interrupted", started, "interrupted")
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as e:
        _status(run_dir, "failed", started, f"{type(e).__name__}: {e}")
        if in_sweep:
            log.exception("trial failed; the sweep goes on")
            return math.inf
        raise
    _status(run_dir, "completed", started)
    return objective if math.isfinite(objective) else math.inf


def _to_log_file(message: str) -> None:
    """Record in run.log only: the console gets the message once, on stderr."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def _status(run_dir: Path, status: str, started: float, message: str | None = None) -> None:
    record = {"status": status, "message": message, "started": started, "seconds": time.time() - started}
    write_json(run_dir / "status.json", record)


def _check_fresh_dir(run_dir: Path, resume: str | None) -> None:
    if resume is None and ((run_dir / "history.json").exists() or (run_dir / "checkpoints").exists()):
        raise MigtError(
            f"{run_dir} already holds a run; pass trainer.resume=auto to continue it "
            "or choose another hydra.run.dir"
        )


def train_and_evaluate(cfg: DictConfig, run_dir: Path) -> float:
    from migt_train.data import load_market
    from migt_train.evaluation.report import evaluate_run
    from migt_train.training import Trainer, TrainerConfig, load_checkpoint

    validate(cfg)
    _check_fresh_dir(run_dir, cfg.trainer.resume)
    resolved = resolved_container(cfg)
    write_text(run_dir / "config.yaml", OmegaConf.to_yaml(resolved))
    write_json(run_dir / "status.json", {"status": "running", "started": time.time()})
    t = cfg.trainer
    runtime = Runtime.create(t.device, t.mixed_precision, t.amp_dtype)
    seed_everything(cfg.seed, runtime.dist.rank)

    log.info("run directory: %s", run_dir)
    t0 = time.time()
    data = load_market(cfg.data)
    log.info(
        "data: %s, %d bars x %d features; samples train/val/test = %s (%.1fs)",
        data.source, *data.features.shape,
        "/".join(str(len(data.splits[k])) for k in ("train", "val", "test")), time.time() - t0,
    )
    levels = [float(t) for t in cfg.quantiles.levels]
    model = instantiate(cfg.model)
    n_parameters = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info("model: %s, %s trainable parameters", type(model).__name__, f"{n_parameters:,}")

    logger = instantiate(cfg.logger, run_dir=run_dir, run_config=resolved, _recursive_=False)
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
            },
            history_path=run_dir / "history.json",
            batch_size=cfg.evaluation.batch_size,
            device=runtime.device,
            conformal=cfg.evaluation.conformal,
            ewma_halflife=cfg.evaluation.ewma_halflife,
            precision=runtime.precision,
        )
        test = metrics["test"]
        log.info(
            "test: pinball %.6g, crps %.6g, calibration error %.4f, skill vs climatology %.4f, "
            "oracle gap closed %s",
            test["pinball_loss"], test["crps"], test["calibration_error"],
            metrics["skill_vs_climatology"], metrics.get("oracle_gap_closed"),
        )
        logger.log_summary({f"test/{k}": v for k, v in test.items() if isinstance(v, float)})
        exit_code = 0
    finally:
        logger.finish(exit_code)
    return float(result.best_val_loss)
