"""har_gk: the HAR regression on realised range variance recovers a simulated log-variance law, fits on
the training rows only, and its regressors (and the model's realised context) are causal."""

import numpy as np

from migt_train.volatility.har import HARGK
from migt_train.volatility.realized import WINDOW_MINUTES, gk_variance, realized_ratios, trailing_sums

BARS_PER_DAY = 288
WINDOW_BARS = [1, 12, 288, 2016]  # the WINDOW_MINUTES in 5-minute bars
TRUE = np.array([0.05, 0.35, 0.25, 0.2, 0.1])  # intercept, then one slope per window


def simulate(n: int = 30_000, seed: int = 5, noise: float = 0.4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """5-minute bars whose log variance follows the HAR law in TRUE exactly, plus Gaussian noise:
    log u_{t+1} = c + sum_k b_k log(mean of u over the last window_k bars) + e. -> gk, returns, timestamps."""
    assert list(WINDOW_MINUTES) == [0, 60, 1440, 10080]
    g = np.random.default_rng(seed)
    u = np.empty(n)
    u[: WINDOW_BARS[-1]] = np.exp(g.normal(0.0, 0.3, WINDOW_BARS[-1]))
    c = np.concatenate([[0.0], np.cumsum(u)])
    for t in range(WINDOW_BARS[-1] - 1, n - 1):
        x = [np.log((c[t + 1] - c[t + 1 - w]) / w) for w in WINDOW_BARS]
        u[t + 1] = np.exp(TRUE[0] + TRUE[1:] @ x + noise * g.standard_normal())
        c[t + 2] = c[t + 1] + u[t + 1]
    profile = 1.0 + 0.8 * np.sin(np.arange(n) * 2 * np.pi / BARS_PER_DAY) ** 2
    gk = 1e-6 * u * profile
    returns = np.sqrt(gk) * g.standard_normal(n)
    ts = np.datetime64("2024-01-01T00:00", "ns") + np.arange(n) * np.timedelta64(5, "m")
    return gk, returns, ts


def _fit(gk, returns, ts, train_end):
    bid = np.arange(len(gk)) % BARS_PER_DAY
    targets = np.concatenate([returns[1:], [np.nan]])[:, None]
    rows = np.arange(WINDOW_BARS[-1], train_end)
    return HARGK.fit(gk, ts, bid, targets, rows, slice(0, train_end), BARS_PER_DAY, [1], [0.1, 0.5, 0.9])


def test_har_recovers_a_simulated_log_variance_law():
    gk, returns, ts = simulate()
    fit = _fit(gk, returns, ts, len(gk) - 1)
    np.testing.assert_allclose(fit.coef[0, 1:], TRUE[1:], atol=0.05)
    assert fit.r2[0] > 0.15  # the noise (sd 0.4) leaves most of the log variance unexplained
    assert fit.z.shape == (1, 3) and np.all(np.diff(fit.z[0]) > 0)


def test_har_fits_on_the_training_rows_only():
    gk, returns, ts = simulate(n=12_000)
    a = _fit(gk, returns, ts, 9_000)
    gk2, returns2 = gk.copy(), returns.copy()
    gk2[9_001:] *= 50.0
    returns2[9_001:] *= 7.0
    b = _fit(gk2, returns2, ts, 9_000)
    np.testing.assert_array_equal(a.coef, b.coef)
    np.testing.assert_array_equal(a.z, b.z)
    # ...and its forecasts are causal: rows before the change do not move
    rows = np.arange(5_000, 9_000)
    np.testing.assert_array_equal(a.quantiles(rows), b.quantiles(rows))
    assert not np.allclose(a.quantiles(np.arange(9_100, 9_200)), b.quantiles(np.arange(9_100, 9_200)))


def test_realised_windows_are_times_not_bar_counts():
    # 1-minute and 15-minute bars over the same hours: the 1 h window sums 60 and 4 bars
    for minutes, bars_in_hour in ((1, 60), (15, 4)):
        ts = np.datetime64("2024-01-01T00:00", "ns") + np.arange(500) * np.timedelta64(minutes, "m")
        sums = trailing_sums(np.ones(500), ts)
        assert sums[-1, 0] == 1 and sums[-1, 1] == bars_in_hour


def test_realised_ratios_are_causal_and_zero_when_range_meets_expectation():
    g = np.random.default_rng(0)
    n = 3_000
    close = 100 * np.exp(np.cumsum(g.normal(0, 1e-3, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    high = np.maximum(open_, close) * (1 + np.abs(g.normal(0, 5e-4, n)))
    low = np.minimum(open_, close) * (1 - np.abs(g.normal(0, 5e-4, n)))
    gk = gk_variance(open_, high, low, close)
    ts = np.datetime64("2024-01-01T00:00", "ns") + np.arange(n) * np.timedelta64(5, "m")
    np.testing.assert_allclose(realized_ratios(gk, gk, ts), 0.0, atol=1e-6)
    expected = np.full(n, float(gk.mean()))
    a = realized_ratios(gk, expected, ts)
    gk2 = gk.copy()
    gk2[2_000:] *= 30
    b = realized_ratios(gk2, expected, ts)
    np.testing.assert_array_equal(a[:2_000], b[:2_000])
    assert (b[2_000:, 0] > a[2_000:, 0]).all()


def test_volume_ratios_are_relative_to_the_time_of_day_profile():
    from migt_train.volatility.realized import N_WINDOWS, volume_profile, volume_ratios

    n, per_day = 2_000, 288
    bid = np.arange(n) % per_day
    usual = 100.0 * (1 + 4 * (bid == 114))  # one busy bar of day
    ts = np.datetime64("2024-01-01T00:00", "ns") + np.arange(n) * np.timedelta64(5, "m")
    profile = volume_profile(usual, bid, slice(0, 1_000), per_day)
    np.testing.assert_allclose(volume_ratios(usual, profile, bid, ts), 0.0, atol=1e-6)  # the usual volume: 0
    busy = usual.copy()
    busy[1_500:] *= 3
    r = volume_ratios(busy, profile, bid, ts)
    np.testing.assert_allclose(r[1_500:, 0], np.log(3.0), rtol=1e-5)  # three times the usual, at any bar of day
    np.testing.assert_allclose(r[:1_500], 0.0, atol=1e-6)  # causal
    # no volume in the file: no profile, and zero ratios
    assert volume_profile(np.zeros(n), bid, slice(0, 1_000), per_day) is None
    assert not volume_ratios(np.zeros(n), None, bid, ts).any() and volume_ratios(usual, None, bid, ts).shape == (n, N_WINDOWS)


def test_signed_moves_are_returns_in_expected_stds():
    from migt_train.volatility.realized import signed_moves

    n = 1_000
    ts = np.datetime64("2024-01-01T00:00", "ns") + np.arange(n) * np.timedelta64(5, "m")
    r = np.full(n, 1e-3)
    r[600:] = -2e-3
    m = signed_moves(r, np.full(n, 1e-6), ts)  # expected one-bar std 1e-3
    np.testing.assert_allclose(m[:600, 0], 1.0, rtol=1e-5)  # one bar: one std up
    np.testing.assert_allclose(m[599, 1], np.sqrt(12), rtol=1e-5)  # 12 bars of +1 std: sqrt(12) stds over the hour
    assert (m[600:, 0] < 0).all() and np.allclose(m[:600], signed_moves(r[:600], np.full(600, 1e-6), ts[:600]))


def test_context_slices_are_disjoint_recent_past_and_trailing_windows_as_before():
    from migt_train.volatility.realized import CONTEXT_SLICES, HAR_SLICES, slice_sums

    n = 400
    ts = np.datetime64("2024-01-01T00:00", "ns") + np.arange(n) * np.timedelta64(5, "m")
    ts[200:] += np.timedelta64(3, "h")  # a session break of three hours before bar 200
    v = np.arange(n, dtype=np.float64)
    s = slice_sums(v, ts, [(0, 0), (0, 15), (15, 30), (120, 240), (0, 60)])
    assert s[100, 0] == 100 and s[100, 1] == 99 + 100 + 98  # the bar; the quarter hour = the last 3 bars
    assert s[100, 2] == 95 + 96 + 97  # the quarter hour before
    assert s[100, 3] == sum(range(53, 77))  # bars more than 2 and up to 4 hours old
    np.testing.assert_array_equal(s[:, 4], trailing_sums(v, ts, [60])[:, 0])
    assert s[202, 2] == 0  # just after the break its quarter hour before holds no bar...
    gk = np.full(n, 2e-6)
    r = realized_ratios(gk, np.full(n, 1e-6), ts, CONTEXT_SLICES)
    assert r.shape == (n, len(CONTEXT_SLICES))
    np.testing.assert_allclose(r[202, 2], 0.0)  # ...and reads as no news, not as a dead market
    np.testing.assert_allclose(r[202, 1], np.log(2.0), rtol=1e-6)
    # the trailing windows are the HAR slices
    np.testing.assert_array_equal(realized_ratios(gk * v, np.full(n, 1e-6), ts),
                                  realized_ratios(gk * v, np.full(n, 1e-6), ts, HAR_SLICES))


def test_recent_slices_count_trading_time_across_a_session_break():
    """With the bar size, the recent slices are the bars that traded: just after a break the quarter hour before
    is the bars before the break (the recent past of trading), the day and week stay clock windows."""
    from migt_train.volatility.realized import CONTEXT_SLICES, TRADING_TIME_MINUTES, slice_sums

    n = 400
    ts = np.datetime64("2024-01-01T00:00", "ns") + np.arange(n) * np.timedelta64(5, "m")
    ts[200:] += np.timedelta64(3, "h")
    v = np.arange(n, dtype=np.float64)
    s = slice_sums(v, ts, [(0, 0), (0, 15), (15, 30), (120, 240), (0, 1440)], bar_minutes=5)
    assert s[202, 1] == 200 + 201 + 202 and s[202, 2] == 197 + 198 + 199  # across the break: the bars before it
    assert s[100, 3] == sum(range(53, 77)) and s[30, 3] == sum(range(0, 7))  # from the first bar on
    np.testing.assert_array_equal(s[:, 4], trailing_sums(v, ts, [1440])[:, 0])  # the day: clock time
    # without a break trading time is clock time
    plain = np.datetime64("2024-01-01T00:00", "ns") + np.arange(n) * np.timedelta64(5, "m")
    np.testing.assert_array_equal(slice_sums(v, plain, CONTEXT_SLICES, bar_minutes=5), slice_sums(v, plain, CONTEXT_SLICES))
    # 15-minute bars: a quarter hour is one bar
    q = slice_sums(v, plain, [(0, 15), (15, 30), (105, 120)], bar_minutes=15)
    assert q[50].tolist() == [50, 49, 43] and max(f for _, f in CONTEXT_SLICES[:-2]) == TRADING_TIME_MINUTES
