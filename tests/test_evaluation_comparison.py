"""Model vs best baseline: skill and the circular-block-bootstrap interval, checked by hand and
against a slow reference implementation."""

import numpy as np
import pytest
import torch

from migt_train.evaluation.comparison import (
    block_resample_means,
    circular_block_bootstrap,
    compare_with_best_baseline,
    per_sample_loss,
)


def test_block_resample_means_by_hand():
    d = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    # block 2, n 5 -> 3 blocks, the last cut to 1 value: [d4, d0] + [d0, d1] + [d2] = 5+1+1+2+3
    starts = np.array([[4, 0, 2], [1, 3, 4]])  # second: [2, 3] + [4, 5] + [5] = 19
    np.testing.assert_allclose(block_resample_means(d, 2, starts), [12 / 5, 19 / 5])
    with pytest.raises(ValueError):
        block_resample_means(d, 2, np.array([[0, 1]]))


def _slow_bootstrap(d: np.ndarray, block: int, n_boot: int, seed: int) -> np.ndarray:
    n = len(d)
    starts = np.random.default_rng(seed).integers(0, n, size=(n_boot, -(-n // block)))
    means = []
    for row in starts:
        idx = []
        for s in row:
            idx.extend((s + j) % n for j in range(block))
        means.append(d[idx[:n]].mean(axis=0))
    return np.quantile(np.array(means), [0.025, 0.975], axis=0)


@pytest.mark.parametrize("block", [1, 4, 7])
def test_bootstrap_matches_slow_reference(block):
    d = np.random.default_rng(1).standard_normal((23, 2))
    lo, hi = circular_block_bootstrap(d, block, n_boot=300, seed=5)
    ref = _slow_bootstrap(d, block, 300, 5)
    np.testing.assert_allclose(lo, ref[0], rtol=1e-12)
    np.testing.assert_allclose(hi, ref[1], rtol=1e-12)
    assert np.all(lo < d.mean(0)) and np.all(d.mean(0) < hi)


def test_block_of_whole_sample_gives_the_mean():
    # every circular resample with block = n is a rotation of the data: its mean is the sample mean
    d = np.array([0.3, -1.0, 2.5, 0.1, 0.0, 4.0])
    lo, hi = circular_block_bootstrap(d, block=6, n_boot=50)
    assert lo == pytest.approx(d.mean()) and hi == pytest.approx(d.mean())


def test_compare_by_hand():
    levels = [0.5]
    y = torch.zeros(4, 1)
    model = torch.full((4, 1, 1), 0.2)  # pinball 0.5 * 0.2 = 0.10 per sample
    preds = {"a": torch.full((4, 1, 1), 0.4), "b": torch.full((4, 1, 1), -0.3)}  # 0.20, 0.15
    out = compare_with_best_baseline(model, y, preds, levels, ["1h"], block=4, n_boot=20)
    assert out["best_baseline"] == "b"
    assert out["skill_vs_best_baseline"] == pytest.approx(1 - 0.10 / 0.15)
    c = out["comparison"]
    assert c["baseline"] == "b" and c["block"] == 4 and c["n_boot"] == 20
    assert c["loss_difference"] == pytest.approx(-0.05)
    assert c["ci95"] == pytest.approx([-0.05, -0.05])  # block = n: every resample is the sample
    assert c["per_horizon"]["1h"]["loss_difference"] == pytest.approx(-0.05)


def test_compare_interval_is_paired_and_per_horizon():
    g = np.random.default_rng(2)
    n, levels = 400, [0.1, 0.5, 0.9]
    y = torch.tensor(g.standard_normal((n, 2)))
    z = torch.tensor([-1.2816, 0.0, 1.2816], dtype=torch.float64)
    good = (torch.ones(n, 2, 1) * z).double()
    wide = 1.6 * good
    out = compare_with_best_baseline(good, y, {"wide": wide, "narrow": 0.3 * good}, levels, ["a", "b"], block=10)
    assert out["best_baseline"] == "wide"
    d = per_sample_loss(good, y, levels) - per_sample_loss(wide, y, levels)
    lo, hi = circular_block_bootstrap(np.column_stack([d.mean(1), d]), 10)
    c = out["comparison"]
    assert c["loss_difference"] == pytest.approx(d.mean()) and c["ci95"] == pytest.approx([lo[0], hi[0]])
    assert c["ci95"][1] < 0  # the right-width forecast is better on every draw's mean
    assert c["per_horizon"]["b"]["ci95"] == pytest.approx([lo[2], hi[2]])
    L = per_sample_loss(good, y, levels).mean()
    assert out["skill_vs_best_baseline"] == pytest.approx(1 - L / per_sample_loss(wide, y, levels).mean())


def test_comparisons_against_every_baseline_match_each_alone():
    """metrics.json "comparisons": each baseline's block is what a comparison with that baseline alone gives
    (the same resamples), with skills overall and per horizon."""
    g = np.random.default_rng(3)
    n, levels = 300, [0.1, 0.5, 0.9]
    y = torch.tensor(g.standard_normal((n, 2)))
    z = torch.tensor([-1.2816, 0.0, 1.2816], dtype=torch.float64)
    good = (torch.ones(n, 2, 1) * z).double()
    preds = {"wide": 1.6 * good, "narrow": 0.3 * good, "shifted": good + 0.4}
    out = compare_with_best_baseline(good, y, preds, levels, ["a", "b"], block=10, n_boot=300)
    assert set(out["comparisons"]) == set(preds)
    assert out["comparisons"][out["best_baseline"]]["ci95"] == out["comparison"]["ci95"]
    for name, p in preds.items():
        alone = compare_with_best_baseline(good, y, {name: p}, levels, ["a", "b"], block=10, n_boot=300)["comparison"]
        c = out["comparisons"][name]
        assert c["loss_difference"] == pytest.approx(alone["loss_difference"]) and c["ci95"] == pytest.approx(alone["ci95"])
        assert c["per_horizon"]["b"]["ci95"] == pytest.approx(alone["per_horizon"]["b"]["ci95"])
        lm, lb = per_sample_loss(good, y, levels), per_sample_loss(p, y, levels)
        assert c["skill"] == pytest.approx(1 - lm.mean() / lb.mean())
        assert c["per_horizon"]["a"]["skill"] == pytest.approx(1 - lm[:, 0].mean() / lb[:, 0].mean())
