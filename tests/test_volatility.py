"""GarchTOD: recovers a simulated GARCH(1,1)-t with a time-of-day profile, filters causally, fits on
the training bars only, and beats climatology out of sample."""

import dataclasses

import numpy as np
import pytest

from migt_train.volatility.garch import GarchTOD

BARS_PER_DAY = 48
OMEGA, ALPHA, BETA, NU = 0.02, 0.08, 0.90, 6.0


def _true_profile() -> np.ndarray:
    b = np.arange(BARS_PER_DAY)
    return 0.4 + 1.6 * np.exp(-0.5 * ((b - 20) / 3.0) ** 2) + 0.5 * (b >= 40)  # quiet night, open spike, close


def simulate(n: int = 20_000, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    g = np.random.default_rng(seed)
    z = g.standard_t(NU, n) * np.sqrt((NU - 2) / NU)
    e = np.empty(n)
    s2 = OMEGA / (1 - ALPHA - BETA)
    for t in range(n):
        e[t] = np.sqrt(s2) * z[t]
        s2 = OMEGA + ALPHA * e[t] ** 2 + BETA * s2
    bid = np.arange(n) % BARS_PER_DAY
    return 1e-3 * e * _true_profile()[bid], bid


def _pinball(q: np.ndarray, y: np.ndarray, levels: np.ndarray) -> float:
    d = y[..., None] - q
    return float(np.maximum(levels * d, (levels - 1) * d).mean())


def _targets(r: np.ndarray, horizons: list[int]) -> np.ndarray:
    c = np.concatenate([[0.0], np.cumsum(r)])
    t = np.arange(len(r))
    out = np.full((len(r), len(horizons)), np.nan)
    for j, h in enumerate(horizons):
        ok = t + h < len(r)
        out[ok, j] = c[t[ok] + 1 + h] - c[t[ok] + 1]  # returns of bars t+1 .. t+h
    return out


@pytest.fixture(scope="module")
def series():
    r, bid = simulate()
    train = slice(0, 14_000)
    return r, bid, train, GarchTOD.fit(r, bid, train, BARS_PER_DAY)


def test_fit_recovers_parameters_and_profile(series):
    r, bid, train, m = series
    assert m.converged, m.message
    assert m.alpha == pytest.approx(ALPHA, abs=0.03)
    assert m.beta == pytest.approx(BETA, abs=0.04)
    assert m.persistence == pytest.approx(ALPHA + BETA, abs=0.015)
    assert m.nu == pytest.approx(NU, abs=2.0)
    assert m.fit_seconds > 0
    # the profile is mean |r| relative to the overall mean: the true shape up to one constant
    true = _true_profile()
    ratio = m.profile / true
    assert np.abs(ratio / ratio.mean() - 1).max() < 0.2  # ~290 training bars per slot, clustered volatility
    assert np.corrcoef(m.profile, true)[0, 1] > 0.98


def test_filter_matches_recursion_and_is_causal(series):
    r, bid, train, m = series
    v = m.filter_variance(r, bid)
    e = r / m.profile[bid] - m.mu
    s2 = m.init_variance
    for t in range(300):
        s2 = m.omega + m.alpha * e[t] ** 2 + m.beta * s2
        assert v[t] == pytest.approx(s2, rel=1e-10)
    r2 = r.copy()
    r2[15_000:] *= 5  # later returns must not move earlier variances
    v2 = m.filter_variance(r2, bid)
    assert np.array_equal(v[:15_000], v2[:15_000]) and not np.array_equal(v[15_000:], v2[15_000:])


def test_horizon_std_matches_slow_multi_step_forecast(series):
    r, bid, train, m = series
    v = m.filter_variance(r, bid)
    rows = np.array([14_000, 15_321, 19_000])
    horizons = [1, 3, 10]
    got = m.horizon_std(v, bid, rows, horizons)
    phi = m.alpha + m.beta
    for i, t in enumerate(rows):
        expected, total, out = v[t], 0.0, []
        for k in range(1, 11):
            total += m.profile[bid[t + k]] ** 2 * expected
            out.append(np.sqrt(total))
            expected = m.omega + phi * expected  # E_t[sigma2_{t+k+1}] from E_t[sigma2_{t+k}]
        np.testing.assert_allclose(got[i], [out[h - 1] for h in horizons], rtol=1e-10)


def test_quantiles_beat_climatology_out_of_sample(series):
    r, bid, train, m = series
    horizons, levels = [1, 4, 12], np.array([0.05, 0.1, 0.25, 0.5, 0.75, 0.89, 0.94])
    y = _targets(r, horizons)
    test_rows = np.arange(14_000, len(r) - max(horizons))
    q = m.quantiles(m.filter_variance(r, bid), bid, test_rows, horizons, levels)
    assert q.shape == (len(test_rows), 3, 7) and np.all(np.diff(q, axis=-1) > 0)
    clim = np.nanquantile(y[:14_000 - max(horizons)], levels, axis=0).T  # (H, Q)
    l_garch = _pinball(q, y[test_rows], levels)
    l_clim = _pinball(np.broadcast_to(clim, q.shape), y[test_rows], levels)
    assert l_garch < 0.93 * l_clim
    cover = (y[test_rows][..., None] <= q).mean(axis=(0, 1))
    np.testing.assert_allclose(cover, levels, atol=0.03)


def test_fit_uses_training_bars_only(series):
    r, bid, train, m = series
    r2 = r.copy()
    r2[14_000:] = np.random.default_rng(9).standard_normal(len(r) - 14_000) * 0.01
    m2 = GarchTOD.fit(r2, bid, train, BARS_PER_DAY)
    assert (m2.omega, m2.alpha, m2.beta, m2.nu, m2.init_variance) == (m.omega, m.alpha, m.beta, m.nu, m.init_variance)
    assert np.array_equal(m2.profile, m.profile)
    r2[:100] *= 3  # and the training bars do matter
    assert GarchTOD.fit(r2, bid, train, BARS_PER_DAY).alpha != m.alpha


def test_constant_mean_and_unseen_bars():
    r, bid = simulate(6_000, seed=5)
    r = r + 2e-4  # a drift the constant-mean fit must find
    m = GarchTOD.fit(r, bid, slice(0, 5_000), BARS_PER_DAY + 12, mean="constant")
    assert m.mu > 0
    assert np.all(m.profile[BARS_PER_DAY:] == 1.0)  # never-seen bar slots get the overall level
    q = m.quantiles(m.filter_variance(r, bid), bid, np.array([5_100]), [2], [0.5])
    assert q[0, 0, 0] == pytest.approx(m.mu * m.profile[bid[5_101:5_103]].sum())


def test_failed_fit_is_reported_not_raised(series):
    r, bid, train, m = series
    bad = GarchTOD.fit(r, bid, train, BARS_PER_DAY, max_iter=1)  # the optimiser stops before converging
    assert not bad.converged and "fallback" in bad.message
    assert bad.params()["converged"] is False
    assert 0 < bad.persistence < 1 and np.isfinite(bad.filter_variance(r, bid)).all()


def test_stored_gamma_of_older_runs_filters_the_gjr_recursion(series):
    """Runs trained with the removed data.vol_anchor_leverage stored a GJR gamma in vol_anchor.json: read back,
    the filter runs their recursion, so they forecast as they were trained. A fit has none."""
    r, bid, _, m = series
    assert m.gamma == 0.0
    old = dataclasses.replace(m, alpha=m.alpha - 0.05, gamma=0.10)
    assert old.persistence == pytest.approx(m.persistence)
    v = old.filter_variance(r, bid)
    e = r / old.profile[bid] - old.mu
    s2 = old.init_variance
    for t in range(300):
        s2 = old.omega + (old.alpha + old.gamma * (e[t] < 0)) * e[t] ** 2 + old.beta * s2
        assert v[t] == pytest.approx(s2, rel=1e-10)
    # a fall raises the next variance more than a rise of the same size
    up, down = r.copy(), r.copy()
    up[15_000], down[15_000] = 0.01, -0.01
    assert old.filter_variance(down, bid)[15_000] > old.filter_variance(up, bid)[15_000]


def test_smoothed_profile_averages_seen_neighbours_and_has_less_noise():
    r, bid = simulate(30 * BARS_PER_DAY, seed=6)  # 30 training days: 30 returns per bar of day
    raw = GarchTOD.fit(r, bid, slice(0, len(r)), BARS_PER_DAY + 4)  # 4 bar slots never seen
    smooth = GarchTOD.fit(r, bid, slice(0, len(r)), BARS_PER_DAY + 4, profile_smoothing=2)
    # bar 0 follows the 4 unseen slots: the first bar after a break keeps its own mean, and no other
    # bar averages it in; the others average the seen bars within +-2
    assert smooth.profile[0] == raw.profile[0]
    for b in (1, 2, 20, BARS_PER_DAY - 1):
        nb = [b + k for k in range(-2, 3) if 1 <= b + k < BARS_PER_DAY]
        assert smooth.profile[b] == pytest.approx(raw.profile[nb].mean(), rel=1e-12)
    assert np.all(smooth.profile[BARS_PER_DAY:] == 1.0) and np.all(raw.profile[BARS_PER_DAY:] == 1.0)
    true = _true_profile()
    err = lambda p: np.abs(np.log(p[:BARS_PER_DAY] / p[:BARS_PER_DAY].mean() * true.mean() / true)).mean()
    assert err(smooth.profile) < 0.8 * err(raw.profile)
