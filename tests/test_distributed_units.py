"""In-process pieces of DDP and the CUDA path that a CPU can check: the global-batch sampler, the
single-process collectives, sharded validation order, device residency of the market and the
host-side "no padded window" flag that lets the model pass no attention mask."""

from __future__ import annotations

import torch

from migt_train.evaluation.metrics import quantile_metrics
from migt_train.training.runtime import DistEnv, Precision, all_gather_rows, all_reduce, shard
from migt_train.training.step import gather
from migt_train.training.sampler import EpochSampler
from test_model import make_batch, run, tiny


def _epoch(rows: torch.Tensor, batch: int, world: int, epoch: int = 3) -> list[list[torch.Tensor]]:
    """[rank][global batch] -> that rank's rows."""
    out = []
    for r in range(world):
        s = EpochSampler(rows, batch, seed=7, rank=r, world_size=world)
        s.set_epoch(epoch)
        out.append(list(s))
    return out


def test_global_batches_are_split_over_ranks_each_row_once() -> None:
    rows = torch.arange(100, 203)  # 103 rows: the last global batch of 16 has 7
    single = _epoch(rows, 16, 1)[0]
    split = _epoch(rows, 16, 3)
    assert len(single) == len(split[0]) == len(split[1]) == len(split[2]) == 7  # same count on every rank
    for b, whole in enumerate(single):
        union = torch.cat([split[r][b] for r in range(3)])
        assert sorted(union.tolist()) == sorted(whole.tolist())  # global batch b is the single process's
    seen = torch.cat([torch.cat(per_rank) for per_rank in split])
    assert sorted(seen.tolist()) == rows.tolist()  # every row once per epoch, none repeated


def test_short_last_batch_leaves_a_rank_empty_and_resume_position_is_global() -> None:
    rows = torch.arange(17)  # batch 8 over 3 ranks: the last global batch has 1 row
    split = _epoch(rows, 8, 3)
    assert [len(split[r][-1]) for r in range(3)] == [1, 0, 0]
    s = EpochSampler(rows, 8, seed=7, rank=1, world_size=3)
    s.set_epoch(3, position=1)
    assert [b.tolist() for b in s] == [b.tolist() for b in split[1][1:]]
    assert EpochSampler(rows, 8, seed=7).global_size(2) == 1


def test_collectives_are_identities_in_one_process() -> None:
    t = torch.arange(6.0).view(3, 2)
    assert all_reduce(t.clone(), "max").equal(t) and all_gather_rows(t) is t


def test_validation_shards_concatenate_to_the_rows_in_order() -> None:
    rows = torch.arange(11)
    parts = [shard(rows, DistEnv(r, 4)) for r in range(4)]
    assert torch.cat(parts).equal(rows) and max(map(len, parts)) - min(map(len, parts)) <= 1
    assert shard(rows, DistEnv()).equal(rows)


def test_market_to_same_device_is_free_and_full_window_flag_matches_the_batch_mask(market) -> None:
    assert market.to("cpu") is market
    rows = torch.arange(len(market.features))
    padded_rows = rows[~market.batch(rows)["mask"].all(1)]
    full_rows = rows[market.batch(rows)["mask"].all(1)]
    assert len(padded_rows) and len(full_rows)
    assert market.full_windows(full_rows) and not market.full_windows(padded_rows[:1])
    assert not market.full_windows(torch.cat([full_rows[:5], padded_rows[:1]]))
    # on the CPU the batch keeps its mask (the model reads it there for free)
    assert gather(market, full_rows[:4], torch.device("cpu"))["mask"] is not None


def test_model_without_mask_equals_model_with_an_all_true_mask() -> None:
    model = tiny().eval()
    b = make_batch()
    with torch.no_grad():
        a = run(model, b)["quantiles"]
        none = model(b["features"], None, b["time"])["quantiles"]
    assert torch.allclose(a, none, atol=1e-6)


def test_amp_dtype_auto_and_autocast_off_on_cpu() -> None:
    p = Precision.for_device(torch.device("cpu"), True, "auto")
    assert not p.enabled and not p.grad_scaler().is_enabled()
    assert Precision.for_device(torch.device("cpu"), True, "bfloat16").dtype == torch.bfloat16


def test_quantile_metrics_are_plain_floats() -> None:
    g = torch.Generator().manual_seed(0)
    q = torch.randn(50, 2, 3, generator=g).sort(-1).values
    m = quantile_metrics(q, torch.randn(50, 2, generator=g), [0.1, 0.5, 0.9], ["a", "b"])
    assert type(m["pinball_loss"]) is float and type(m["per_horizon"]["b"]["coverage"]["0.9"]) is float
    assert type(m["intervals"][0]["picp"]) is float and m["intervals"][0]["nominal"] == 0.8
