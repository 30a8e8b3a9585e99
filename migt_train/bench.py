"""Speed and memory figures: `python -m migt_train.bench [--quick] [--sections model]`.

One function per section; each returns rows of figures and prints them. Sections:
  model  forward FLOPs (FlopCounterMode, math SDPA backend), training-step time (the trainer's
         forward + pinball loss + backward, step.py), achieved
         GFLOP/s (a train step ~ 3x the forward FLOPs) and peak RSS, for the full-size and the
         CPU-sized model (conf/model/*.yaml) at patch_len 1 and 12 (B 2 and 16; the CPU model
         also at its own patch_len and the quickstart's batch 64), against the F.linear rate on
         (13824 x 256) . (256 x 1024) measured in the same process (see linear_rate).
  data   batch assembly throughput (samples/s) of MarketData.batch on the quickstart's synthetic market
         at 128 windows x 288 steps x 24 features.
  train  time split of one training step (data, forward, backward, optimizer) for an experiment
         preset (default quickstart) on its own data, batch size and device (AMP where CUDA).
Timings are the minimum over repeats (the machine may be shared); every model case runs in a fresh
spawned process so its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from migt_train.runtime import Precision
from migt_train.training.cpu_memory import retain_freed_memory
from migt_train.training.losses import CombinedQuantileLoss
from migt_train.step import forward, loss_step

CONF_DIR = Path(__file__).resolve().parent.parent / "conf" / "model"
MODEL_CASES = [  # (label, yaml, batch size, patch_len; None = the yaml's own)
    ("full", "migt_tvdt", 2, 1),
    ("full", "migt_tvdt", 2, 12),
    ("cpu", "migt_tvdt_cpu", 16, 1),
    ("cpu", "migt_tvdt_cpu", 16, 12),
    ("cpu", "migt_tvdt_cpu", 64, None),  # as the quickstart trains it
]


def compose_config(*overrides: str):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR.parent), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def min_time(fn: Callable[[], object], repeats: int, warmup: int = 3, min_seconds: float = 1.0) -> float:
    """Minimum wall time of fn() after `warmup` untimed calls, over at least `repeats` calls and at
    least `min_seconds` of timing: fast cases (a few ms) need many calls to reach steady state."""
    for _ in range(warmup):
        fn()
    best, calls, spent = float("inf"), 0, 0.0
    while calls < repeats or spent < min_seconds:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best, calls, spent = min(best, dt), calls + 1, spent + dt
    return best


def peak_rss_mib() -> float:
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return kib / 1024 / (1024 if sys.platform == "darwin" else 1)


def linear_rate(repeats: int = 5) -> float:
    """Achieved GFLOP/s of F.linear on (13824 x 256) . (256 x 1024): the reference dense rate.

    The best of F.linear as called and the same product into a preallocated output: the fresh 56 MB
    output page-faults in some processes and not in others (about 135 vs 175 GFLOP/s on the 2-core
    CPU), and the slow mode would flatter every ratio.
    """
    a, w = torch.randn(13824, 256), torch.randn(1024, 256)
    out = torch.empty(13824, 1024)
    best = min(min_time(lambda: F.linear(a, w), repeats), min_time(lambda: torch.mm(a, w.t(), out=out), repeats))
    return 2 * 13824 * 256 * 1024 / best / 1e9


def model_config(name: str, **overrides):
    """The real composed config with `model=name`, so the model's counts come from data/quantiles."""
    extra = [f"model.{k}={v}" for k, v in overrides.items()]
    return compose_config(f"model={name}", *extra)


def synthetic_batch(batch_size: int, seq_len: int = 288, n_variables: int = 24, bars_per_day: int = 288,
                    n_horizons: int = 5):
    """Random full windows in the MarketData.batch format (every bar valid)."""
    g = torch.Generator().manual_seed(0)
    return {
        "features": torch.randn(batch_size, seq_len, n_variables, generator=g),
        "mask": torch.ones(batch_size, seq_len, dtype=torch.bool),
        "bar_in_day": (torch.arange(seq_len) + torch.randint(0, bars_per_day, (batch_size, 1), generator=g)) % bars_per_day,
        "day_of_week": torch.randint(0, 7, (batch_size,), generator=g),
        "day_of_month": torch.randint(1, 32, (batch_size,), generator=g),
        "day_of_year": torch.randint(1, 367, (batch_size,), generator=g),
        "targets": 1e-3 * torch.randn(batch_size, n_horizons, generator=g),
    }


def batch_throughput(data, batch_size: int = 128, n_batches: int = 50, seed: int = 0) -> float:
    """Samples per second of `data.batch` on random training rows (after one warm-up batch)."""
    rows = data.splits["train"]
    gen = torch.Generator().manual_seed(seed)
    picks = [rows[torch.randint(len(rows), (batch_size,), generator=gen)] for _ in range(n_batches + 1)]
    data.batch(picks[0])
    t0 = time.perf_counter()
    for p in picks[1:]:
        data.batch(p)
    return batch_size * n_batches / (time.perf_counter() - t0)


def _model_case(label: str, yaml_name: str, batch_size: int, patch_len: int | None, repeats: int,
                threads: int) -> dict:
    """Runs in a fresh process: figures for one model configuration."""
    import hydra.utils
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    torch.set_num_threads(threads)
    retain_freed_memory()  # as runtime.Runtime.create does on CPU
    torch.manual_seed(0)
    full = model_config(yaml_name, **({} if patch_len is None else {"patch_len": patch_len}))
    cfg = full.model
    model = hydra.utils.instantiate(cfg)
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    b = synthetic_batch(batch_size)

    precision = Precision()  # the CPU trainer's: no autocast
    model.eval()
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        forward(model, b, precision)
    fwd_flops = counter.get_total_flops() / batch_size

    model.train()
    loss_fn = CombinedQuantileLoss(list(full.quantiles.levels))

    def train_step():
        loss_step(model, loss_fn, b, precision)[1].backward()
        model.zero_grad(set_to_none=True)

    step_s = min_time(train_step, repeats)
    return {
        "model": f"{label} P={cfg.patch_len}",
        "params": params,
        "batch": batch_size,
        "fwd_gflop_per_sample": fwd_flops / 1e9,
        "fwd_bwd_ms_per_sample": step_s / batch_size * 1e3,
        "train_gflops": 3 * fwd_flops * batch_size / step_s / 1e9,
        "linear_gflops": linear_rate(),
        "peak_rss_mib": peak_rss_mib(),
    }


def model_section(quick: bool = False, threads: int | None = None) -> list[dict]:
    threads = threads or torch.get_num_threads()
    repeats = 1 if quick else 3
    ctx = mp.get_context("spawn")
    rows = []
    print(f"== model (torch {torch.__version__}, {threads} threads; train step ~ 3x forward FLOPs)")
    print(f"{'model':<11}{'params':>11}{'B':>4}{'fwd GFLOP/smp':>15}{'fwd+bwd ms/smp':>16}"
          f"{'train GFLOP/s':>15}{'F.linear GFLOP/s':>18}{'ratio':>7}{'peak RSS MiB':>14}")
    for case in MODEL_CASES:
        with ctx.Pool(1) as pool:
            r = pool.apply(_model_case, (*case, repeats, threads))
        r["ratio"] = r["train_gflops"] / r["linear_gflops"]
        rows.append(r)
        print(f"{r['model']:<11}{r['params']:>11,}{r['batch']:>4}{r['fwd_gflop_per_sample']:>15.3f}"
              f"{r['fwd_bwd_ms_per_sample']:>16.1f}{r['train_gflops']:>15.1f}{r['linear_gflops']:>18.1f}"
              f"{r['ratio']:>7.2f}{r['peak_rss_mib']:>14.0f}", flush=True)
    return rows


def data_section(quick: bool = False, threads: int | None = None, **_) -> list[dict]:
    from migt_train.data import load_market

    if threads:
        torch.set_num_threads(threads)
    data = load_market(compose_config("experiment=quickstart").data)
    runs = [batch_throughput(data, batch_size=128, n_batches=20 if quick else 100, seed=i) for i in range(3)]
    rate = sorted(runs)[1]
    print(f"== data ({torch.get_num_threads()} threads): batch of 128 x {data.max_seq_len} x {data.n_features}")
    print(f"batch assembly: {rate:,.0f} samples/s (median of 3; {128 / rate * 1e3:.2f} ms per batch)")
    return [{"samples_per_second": rate}]


def train_section(quick: bool = False, threads: int | None = None, experiment: str = "quickstart") -> list[dict]:
    from hydra.utils import instantiate

    from migt_train.data import load_market
    from migt_train.training.profile import step_time_split

    if threads:
        torch.set_num_threads(threads)
    cfg = compose_config(f"experiment={experiment}")
    torch.manual_seed(cfg.seed)
    data = load_market(cfg.data)
    model = instantiate(cfg.model)
    split = step_time_split(
        model, data, batch_size=cfg.trainer.batch_size, levels=list(cfg.quantiles.levels),
        steps=5 if quick else 20, device=cfg.trainer.device,
        mixed_precision=cfg.trainer.mixed_precision, amp_dtype=cfg.trainer.amp_dtype,
        optimizer=instantiate(cfg.optimizer),
    )
    total = split["total"]
    print(f"== train step ({experiment}: batch {cfg.trainer.batch_size}, {torch.get_num_threads()} threads)")
    for phase in ("data", "forward", "backward", "optimizer"):
        print(f"{phase:<10}{split[phase] * 1e3:>9.2f} ms  {split[phase] / total:>6.1%}")
    print(f"{'total':<10}{total * 1e3:>9.2f} ms  -> {split['samples_per_second']:,.0f} samples/s")
    return [split]


SECTIONS = {"model": model_section, "data": data_section, "train": train_section}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m migt_train.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one timed repeat per case")
    parser.add_argument("--sections", nargs="+", choices=sorted(SECTIONS), default=list(SECTIONS))
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args(argv)
    for name in args.sections:
        SECTIONS[name](quick=args.quick, threads=args.threads)


if __name__ == "__main__":
    main()
