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
  load   a year of 1-minute bars of two futures contracts (~700,000 rows, Databento-style CSV with
         fixed-point prices, written to a temp dir) through load_market at 5-minute bars: read, roll,
         aggregate, featurise (first load, fresh cache), then again from the feature cache.
  train  time split of one training step (data, forward, backward, optimizer) for an experiment
         preset (default quickstart) on its own data, batch size and device (AMP where CUDA).
  gpu    (CUDA only; not in the default sections) experiment=nq_full's model and optimizer, a
         bounded number of full training steps (AdamW, clipping) on random full windows at the
         preset's batch size, once with AMP float16 (GradScaler) and once with bfloat16: samples/s,
         peak GPU memory, achieved TFLOP/s (3x forward FLOPs) and its ratio to a bf16 matmul
         (8192^3) measured in the same process. Refuses with one line where there is no CUDA.
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

from migt_train.config.compose import compose_config
from migt_train.errors import MigtError
from migt_train.training.runtime import Precision, set_matmul_precision
from migt_train.training.cpu_memory import retain_freed_memory
from migt_train.training.losses import CombinedQuantileLoss
from migt_train.training.step import forward, loss_step

MODEL_CASES = [  # (label, yaml, batch size, patch_len; None = the yaml's own)
    ("full", "migt_tvdt", 2, 1),
    ("full", "migt_tvdt", 2, 12),
    ("cpu", "migt_tvdt_cpu", 16, 1),
    ("cpu", "migt_tvdt_cpu", 16, 12),
    ("cpu", "migt_tvdt_cpu", 64, None),  # as the quickstart trains it
]


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
    return compose_config([f"model={name}", *extra])


def synthetic_batch(batch_size: int, seq_len: int = 288, n_variables: int = 24, bars_per_day: int = 288,
                    n_horizons: int = 5, n_event_features: int = 0):
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
        # the context the model's optional additions read (data.vol_anchor / data.event_calendar)
        "vol_anchor": torch.full((batch_size, n_horizons), 1e-3),
        "events": torch.zeros(batch_size, n_horizons, n_event_features),
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
    data = load_market(compose_config(["experiment=quickstart"]).data)
    runs = [batch_throughput(data, batch_size=128, n_batches=20 if quick else 100, seed=i) for i in range(3)]
    rate = sorted(runs)[1]
    print(f"== data ({torch.get_num_threads()} threads): batch of 128 x {data.max_seq_len} x {data.n_features}")
    print(f"batch assembly: {rate:,.0f} samples/s (median of 3; {128 / rate * 1e3:.2f} ms per batch)")
    return [{"samples_per_second": rate}]


def two_contract_year(path: Path, n_days: int = 252, seed: int = 0) -> int:
    """Write a Databento-style CSV: NQH4 and NQM4 1-minute bars over n_days Globex days, NQM4 out-trading
    NQH4 from the middle on. Returns the number of rows. A random walk is enough to time the data path."""
    import numpy as np
    import pandas as pd

    from migt_train.data.sources.calendar import globex_bars

    ts, _ = globex_bars("2024-01-02", n_days, 1, "America/New_York", 18 * 60)
    rng = np.random.default_rng(seed)
    n = len(ts)
    day = np.arange(n) // (len(ts) // n_days)
    frames = []
    for sym, iid, level, share in (("NQH4", 1, 16000.0, np.where(day < n_days // 2, 1.0, 0.2)),
                                   ("NQM4", 2, 16150.0, np.where(day < n_days // 2, 0.2, 1.0))):
        close = level * np.exp(np.cumsum(rng.normal(0, 3e-4, n)))
        open_ = np.r_[close[0], close[:-1]]
        wick = np.abs(rng.normal(0, 2e-4, (2, n))) * close
        px = {"open": open_, "high": np.maximum(open_, close) + wick[0], "low": np.minimum(open_, close) - wick[1],
              "close": close}
        frames.append(pd.DataFrame({
            "ts_event": ts.astype(np.int64), "rtype": 33, "publisher_id": 1, "instrument_id": iid,
            **{k: (np.round(v * 4) / 4 * 1e9).astype(np.int64) for k, v in px.items()},
            "volume": (rng.integers(50, 500, n) * share).astype(np.int64) + 1, "symbol": sym,
        }))
    frame = pd.concat(frames).sort_values(["ts_event", "instrument_id"], kind="stable")
    frame.to_csv(path, index=False)
    return len(frame)


def load_section(quick: bool = False, threads: int | None = None, **_) -> list[dict]:
    import tempfile

    from migt_train.data import load_market
    from migt_train.data.build import file_digest

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "glbx-mdp3.ohlcv-1m.csv"
        rows = two_contract_year(path, n_days=63 if quick else 252)
        size = path.stat().st_size
        cfg = compose_config(["data=ohlcv", f"data.path={path}", f"data.cache_dir={Path(tmp) / 'cache'}"]).data
        t0 = time.perf_counter()
        data = load_market(cfg)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        load_market(cfg)
        cached = time.perf_counter() - t0
        t0 = time.perf_counter()
        file_digest(path)
        digest = time.perf_counter() - t0
    print(f"== data load: {rows:,} rows of 1-minute bars, 2 contracts ({len(data.rolls['rolls'])} roll) -> "
          f"{len(data.timestamps):,} 5-minute bars after warm-up")
    print(f"first load (read, roll, aggregate, featurise): {first:.2f} s; from the feature cache: {cached:.2f} s "
          f"(of which {digest:.2f} s hash the {size / 2**20:.0f} MiB file for the cache key)")
    return [{"rows": rows, "first_load_seconds": first, "cached_seconds": cached, "digest_seconds": digest,
             "file_bytes": size}]


def train_section(quick: bool = False, threads: int | None = None, experiment: str = "quickstart") -> list[dict]:
    from hydra.utils import instantiate

    from migt_train.data import load_market
    from migt_train.training.profile import step_time_split

    if threads:
        torch.set_num_threads(threads)
    cfg = compose_config([f"experiment={experiment}"])
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


def cuda_matmul_tflops(repeats: int = 20, n: int = 8192) -> float:
    """Achieved TFLOP/s of a bf16 (n x n) . (n x n) matmul on the current GPU (CUDA events)."""
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    out = torch.empty(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        torch.mm(a, b, out=out)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        torch.mm(a, b, out=out)
    end.record()
    end.synchronize()
    return 2 * n**3 * repeats / (start.elapsed_time(end) / 1e3) / 1e12


def gpu_section(quick: bool = False, threads: int | None = None, experiment: str = "nq_full") -> list[dict]:
    """Training throughput of the full model on one GPU under AMP float16 and bfloat16."""
    if not torch.cuda.is_available():
        raise MigtError("bench --sections gpu: needs CUDA, and this machine has none (torch.cuda.is_available() is False)")
    from hydra.utils import instantiate
    from torch.utils.flop_counter import FlopCounterMode

    from migt_train.training.accumulate import total_norm

    cfg = compose_config([f"experiment={experiment}"])
    device = torch.device("cuda")
    set_matmul_precision(device)  # as the trainer does: TF32 for the float32 matmuls left
    batch_size, steps = int(cfg.trainer.batch_size), 10 if quick else 30
    levels = list(cfg.quantiles.levels)
    m = cfg.model
    cpu_batch = synthetic_batch(batch_size, int(m.max_seq_len), int(m.n_variables), int(m.bars_per_day),
                                int(m.n_horizons), int(m.n_event_features))
    batch = {k: v.to(device) for k, v in cpu_batch.items()}
    batch["mask"] = None  # full windows: what step.gather passes on CUDA (no attention mask)
    matmul = cuda_matmul_tflops()
    rows = []
    print(f"== gpu ({torch.cuda.get_device_name()}, torch {torch.__version__}; {experiment} model, batch "
          f"{batch_size}, {steps} timed steps; bf16 matmul {matmul:.0f} TFLOP/s)")
    print(f"{'amp':<10}{'samples/s':>11}{'ms/step':>9}{'TFLOP/s':>9}{'ratio':>7}{'peak GiB':>10}")
    for name, dtype in (("float16", torch.float16), ("bfloat16", torch.bfloat16)):
        torch.manual_seed(cfg.seed)
        model = instantiate(cfg.model).to(device)
        precision = Precision("cuda", True, dtype)
        scaler = precision.grad_scaler()
        loss_fn = CombinedQuantileLoss(levels).to(device)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = instantiate(cfg.optimizer)(params)
        model.eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            forward(model, batch, precision)
        step_flops = 3 * counter.get_total_flops()
        model.train()

        def step() -> None:
            loss = loss_step(model, loss_fn, batch, precision)[1]
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            total_norm(params, cfg.trainer.gradient_clip_norm, device)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)

        for _ in range(3):
            step()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
        dt = (time.perf_counter() - t0) / steps
        r = {"amp": name, "samples_per_second": batch_size / dt, "ms_per_step": dt * 1e3,
             "tflops": step_flops / dt / 1e12, "matmul_tflops": matmul,
             "peak_gib": torch.cuda.max_memory_allocated() / 2**30}
        r["ratio"] = r["tflops"] / matmul
        rows.append(r)
        print(f"{name:<10}{r['samples_per_second']:>11,.0f}{r['ms_per_step']:>9.1f}{r['tflops']:>9.1f}"
              f"{r['ratio']:>7.2f}{r['peak_gib']:>10.2f}", flush=True)
        del model, optimizer
        torch.cuda.empty_cache()
    return rows


SECTIONS = {"model": model_section, "data": data_section, "load": load_section, "train": train_section,
            "gpu": gpu_section}
DEFAULT_SECTIONS = ["model", "data", "load", "train"]  # gpu only when asked


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m migt_train.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one timed repeat per case")
    parser.add_argument("--sections", nargs="+", choices=sorted(SECTIONS), default=DEFAULT_SECTIONS)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args(argv)
    try:
        for name in args.sections:
            SECTIONS[name](quick=args.quick, threads=args.threads)
    except MigtError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
