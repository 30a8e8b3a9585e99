"""Seeded synthetic NQ-like market: the generator (its oracle is oracle.py).

Model, per bar t (bar open times on the Globex calendar, exchange time America/New_York):

    r_t   = drift + sqrt(v_t) * z_t + J_t,      z_t ~ Student-t(df) scaled to unit variance
    v_t   = s_t * exp(x_{t-L} - sv_std^2 / 2) * g_t      L = volume_lead_bars (0 by default)
    s_t   = deterministic variance of the bar: intraday profile (09:30 cash-open spike, 16:00 bump, quiet
            night) times the spikes of scheduled releases (volatility/events.py: payrolls and CPI large, other
            08:30 data small, FOMC at 14:00), each decaying exponentially after its release minute
    x_t   = phi * x_{t-1} + sv_std * sqrt(1 - phi^2) * eta_t      slow log-SV factor (days)
    g_t+1 = c + (a z_t^2 + gam z_t^2 [z_t < 0] + b) * g_t          fast unit-mean GJR-GARCH factor (hours):
            c = 1 - a - gam/2 - b; falls raise volatility more than rises (the leverage effect)
    J_t   = rare jumps: Bernoulli(jump_prob) * N(0, 1) * jump_scale * sqrt(s_t * exp(x_t - sv_std^2 / 2))

OHLC come from a Brownian bridge of `intrabar_steps` points from open to close, volume scales with the
bar's volatility (with L > 0 the volatility of the state x_t, which the returns show L bars later). Dynamics parameters are given per 5-minute bar and rescaled for other bar sizes.
Because the generator knows (x_t, g_t+1) after every bar and the release schedule is public in advance
(it is in s_t), `SyntheticOracle` simulates the true conditional distribution of every horizon's return.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np
import pandas as pd

from migt_train.data.sources.calendar import GLOBEX_SESSION_MINUTES, globex_bars
from migt_train.volatility.events import EVENT_CLASSES, decayed_after, event_bars, release_offset

GENERATOR_VERSION = 2  # 2: scheduled releases, leverage (GJR) and jumps
STATE_COLUMNS = ["_bar_var", "_sv", "_garch_next"]


@dataclass
class SyntheticConfig:
    """Every parameter of the synthetic market (`data.synthetic.*`). The default, 160 trading days of
    5-minute bars (~44k bars, ~7.5 months), generates, featurises and caches in a couple of seconds."""

    seed: int = 7
    n_days: int = 160  # Globex trading days (Mon-Fri, no holidays)
    start: str = "2024-01-02"  # first trading day; its session opens 18:00 ET the evening before
    price0: float = 15000.0
    annual_vol: float = 0.22  # long-run volatility of log returns, 252 days of 23 h
    annual_drift: float = 0.0
    student_t_df: float = 5.0  # heavy tails of the bar innovations (> 2)
    garch_alpha: float = 0.02  # per 5-minute bar
    garch_gamma: float = 0.04  # leverage: extra response to falls; alpha + gamma / 2 + beta = 0.99
    garch_beta: float = 0.95  # per 5-minute bar; persistence 0.99 -> half-life ~6 h
    sv_persistence: float = 0.9993  # per 5-minute bar AR(1) of the log-variance factor -> half-life ~3.5 days
    sv_std: float = 0.8  # stationary std of the log-variance factor
    overnight_level: float = 0.3  # intraday volatility (std) multipliers, relative to the midday level 1
    europe_level: float = 0.5  # 03:00-08:30 ET
    premarket_level: float = 0.8  # 08:30-09:30 ET, after a macro-data spike at 08:30
    open_spike: float = 3.5  # at the 09:30 ET cash open, decaying to 1
    open_decay_minutes: float = 30.0
    close_bump: float = 1.8  # around the 16:00 ET cash close
    employment_spike: float = 6.0  # volatility (std) multiplier at a release minute: first-Friday payrolls
    cpi_spike: float = 5.0  # mid-month CPI
    minor_spike: float = 2.0  # other 08:30 data (Thursday claims, retail sales)
    fomc_spike: float = 4.0  # FOMC decision at 14:00 ET, eight a year
    macro_decay_minutes: float = 15.0  # e-folding time of a release spike's extra variance
    fomc_decay_minutes: float = 40.0
    jump_prob: float = 0.0005  # per 5-minute bar (about one every 7 trading days)
    jump_scale: float = 6.0  # jump std in the bar's own std without the fast GARCH factor
    volume_base: float = 1500.0  # contracts per 5 minutes at average volatility
    volume_vol_elasticity: float = 1.0  # volume ~ bar volatility ** elasticity
    volume_noise: float = 0.3  # log-normal noise of volume
    intrabar_steps: int = 12  # points of the intrabar path that sets high and low
    # bars by which volume leads volatility: bar t's volume reflects the log-SV state x_t, its return variance
    # x_{t - lead} (informed trading before the price moves); 0 = both the same bar's state
    volume_lead_bars: int = 0
    oracle_paths: int = 1000  # Monte Carlo paths per oracle query (antithetic pairs)
    # a family of markets (family.py) when instruments > 1; 1 = the single market above
    instruments: int = 1
    common_vol_share: float = 0.7  # share of each member's log-SV variance that is the common factor
    common_shock_share: float = 0.5  # share of a follower's shock variance that repeats the leader's
    lead_bars: int = 2  # bars by which member 0 (syn0) leads the others
    member: Optional[int] = None  # with instruments > 1: train on this member alone (None = the whole family)


def config_key(cfg: SyntheticConfig, bar_minutes: int, tz: str, session_start: int) -> dict:
    return {"generator": GENERATOR_VERSION, **asdict(cfg), "bar_minutes": bar_minutes, "tz": tz, "session_start": session_start}


@dataclass(frozen=True)
class PerBar:
    alpha: float
    gamma: float
    beta: float
    phi: float  # SV AR(1)
    s_eta: float  # SV innovation std
    drift: float
    jump_prob: float

    @property
    def garch_const(self) -> float:
        return 1.0 - self.alpha - self.gamma / 2 - self.beta


def per_bar(cfg: SyntheticConfig, bar_minutes: int) -> PerBar:
    """Dynamics constants for bars of `bar_minutes`, keeping wall-clock persistence; shared by the
    generator and the oracle."""
    k = bar_minutes / 5.0
    p5 = cfg.garch_alpha + cfg.garch_gamma / 2 + cfg.garch_beta
    p = p5**k
    alpha, gamma = cfg.garch_alpha * p / p5, cfg.garch_gamma * p / p5
    phi = cfg.sv_persistence**k
    return PerBar(
        alpha=alpha,
        gamma=gamma,
        beta=p - alpha - gamma / 2,
        phi=phi,
        s_eta=cfg.sv_std * np.sqrt(1.0 - phi**2),
        drift=cfg.annual_drift / (252 * GLOBEX_SESSION_MINUTES) * bar_minutes,
        jump_prob=1.0 - (1.0 - cfg.jump_prob) ** k,
    )


def release_multiplier(ts_utc: np.ndarray, bar_minutes: int, cfg: SyntheticConfig) -> np.ndarray:
    """(n,) variance multiplier of each bar from scheduled releases: 1 + (spike^2 - 1) * the bar's mean of
    exp(-minutes since release / decay) over its minutes after the release (0 before it)."""
    events = event_bars(ts_utc, bar_minutes)
    offset = release_offset(ts_utc, events)
    spikes = {"employment": cfg.employment_spike, "cpi": cfg.cpi_spike, "minor": cfg.minor_spike, "fomc": cfg.fomc_spike}
    mult = np.ones(len(events))
    k = np.arange(bar_minutes)
    for cid, name in enumerate(EVENT_CLASSES, start=1):
        decay = cfg.fomc_decay_minutes if name == "fomc" else cfg.macro_decay_minutes
        at = np.flatnonzero(events == cid)
        if not len(at):
            continue
        o = offset[at]
        # the release bar holds minutes 0 .. bar - 1 - o after the release; the next bars whole bars
        first = np.where(k[None, :] < (bar_minutes - o)[:, None], np.exp(-k[None, :] / decay), 0.0).mean(axis=1)
        weight = np.zeros(len(events) + 1)
        weight[at] += first
        impulse = np.zeros(len(events) + 1)
        impulse[at + 1] = np.exp(-(bar_minutes - o) / decay) * np.exp(-k / decay).mean()
        weight += decayed_after(impulse, decay / bar_minutes)
        mult += (spikes[name] ** 2 - 1.0) * weight[:-1]
    return mult


def intraday_std(minute: np.ndarray, cfg: SyntheticConfig) -> np.ndarray:
    """Volatility multiplier of each local minute of day (ET)."""
    m = np.asarray(minute, dtype=np.float64)
    level = np.full(m.shape, cfg.overnight_level)
    level = np.where((m >= 180) & (m < 510), cfg.europe_level, level)
    level = np.where((m >= 510) & (m < 570), cfg.premarket_level + 0.8 * np.exp(-(m - 510) / 5.0), level)
    cash = 1.0 + (cfg.open_spike - 1.0) * np.exp(-(m - 570) / cfg.open_decay_minutes)
    cash = cash + (cfg.close_bump - 1.0) * np.exp(-0.5 * ((m - 957) / 6.0) ** 2)
    level = np.where((m >= 570) & (m < 960), cash, level)
    after = 0.55 + (cfg.close_bump - 0.55) * np.exp(-(m - 960) / 8.0)
    return np.where((m >= 960) & (m < 1080), after, level)


def bar_variance(minute: np.ndarray, bar_minutes: int, cfg: SyntheticConfig) -> np.ndarray:
    """Deterministic variance of each bar: the profile integrated over its minutes, scaled so the
    average traded minute carries annual_vol^2 / (252 days * 23 h)."""
    all_minutes = (18 * 60 + np.arange(GLOBEX_SESSION_MINUTES)) % 1440
    norm = np.mean(intraday_std(all_minutes, cfg) ** 2)
    per_minute = cfg.annual_vol**2 / (252 * GLOBEX_SESSION_MINUTES) / norm
    inside = (minute[:, None] + np.arange(bar_minutes)[None, :]) % 1440
    return per_minute * (intraday_std(inside, cfg) ** 2).sum(axis=1)


def student_t(rng: np.random.Generator, df: float, size) -> np.ndarray:
    return rng.standard_t(df, size) * np.sqrt((df - 2.0) / df)


def ar1(phi: float, innovations: np.ndarray, x0: float) -> np.ndarray:
    """x_t = phi * x_{t-1} + innovations_t from x_{-1} = x0: the log-SV factor."""
    # a sequential recursion: one cheap scalar pass, not vectorisable without losing exactness
    x = np.empty(len(innovations))
    xv = float(x0)
    for t, et in enumerate(np.asarray(innovations, dtype=np.float64).tolist()):
        xv = phi * xv + et
        x[t] = xv
    return x


def generate(cfg: SyntheticConfig, bar_minutes: int, tz: str, session_start: int) -> pd.DataFrame:
    """Bars (timestamp UTC, open, high, low, close, volume) plus the latent state columns the oracle
    needs (STATE_COLUMNS). Deterministic in (cfg, bar_minutes, tz, session_start)."""
    ts, minute = globex_bars(cfg.start, cfg.n_days, bar_minutes, tz, session_start)
    n = len(ts)
    rng = np.random.default_rng(cfg.seed)
    z = student_t(rng, cfg.student_t_df, n)
    eta = rng.standard_normal(n)
    pb = per_bar(cfg, bar_minutes)
    x = ar1(pb.phi, pb.s_eta * eta, cfg.sv_std * rng.standard_normal())
    return bars_from_shocks(cfg, pb, ts, minute, bar_minutes, z, x, rng)


def bars_from_shocks(cfg: SyntheticConfig, pb: PerBar, ts: np.ndarray, minute: np.ndarray, bar_minutes: int,
                     z: np.ndarray, x: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """The market of bar shocks z (unit variance) and log-SV path x: GJR-GARCH factor, returns, jumps, OHLC and
    volume (their draws from rng) -> generate()'s frame."""
    n = len(ts)
    # GJR news impact per bar, known once z is drawn: the recursion below is then a plain linear one
    impact = (pb.alpha + pb.gamma * (z < 0)) * z * z + pb.beta
    g = np.empty(n + 1)
    gv, c = 1.0, pb.garch_const
    g[0] = gv
    for t, mt in enumerate(impact.tolist()):
        gv = c + mt * gv
        g[t + 1] = gv
    s = bar_variance(minute, bar_minutes, cfg) * release_multiplier(ts, bar_minutes, cfg)
    lead = int(cfg.volume_lead_bars)
    x_price = np.concatenate([np.full(min(lead, n), x[0]), x[: n - lead]]) if lead else x  # x_{t - lead}
    level = np.exp(x_price - cfg.sv_std**2 / 2)
    var = s * level * g[:-1]
    jumps = (rng.random(n) < pb.jump_prob) * rng.standard_normal(n) * cfg.jump_scale * np.sqrt(s * level)
    sd = np.sqrt(var)
    r = pb.drift + sd * z + jumps

    log_close = np.log(cfg.price0) + np.cumsum(r)
    log_open = np.concatenate([[np.log(cfg.price0)], log_close[:-1]])
    k = cfg.intrabar_steps
    w = np.cumsum(rng.standard_normal((n, k)), axis=1) / np.sqrt(k)
    frac = np.arange(1, k + 1) / k
    path = frac[None, :] * r[:, None] + sd[:, None] * (w - frac[None, :] * w[:, -1:])
    open_, close = np.exp(log_open), np.exp(log_close)
    # max/min with open and close again: exp of separately rounded sums may differ by an ulp
    high = np.maximum(np.exp(log_open + np.maximum(path.max(axis=1), 0.0)), np.maximum(open_, close))
    low = np.minimum(np.exp(log_open + np.minimum(path.min(axis=1), 0.0)), np.minimum(open_, close))

    sd_ref = np.sqrt(np.mean(s))
    abs_z = np.abs(z) / np.mean(np.abs(z))
    noise = rng.standard_normal(n) * cfg.volume_noise - cfg.volume_noise**2 / 2
    sd_volume = np.sqrt(s * np.exp(x - cfg.sv_std**2 / 2) * g[:-1]) if lead else sd  # the state of bar t itself
    volume = cfg.volume_base * bar_minutes / 5 * (sd_volume / sd_ref) ** cfg.volume_vol_elasticity
    volume = np.maximum(np.round(volume * (0.7 + 0.3 * abs_z) * np.exp(noise)), 1.0)
    return pd.DataFrame(
        {
            "timestamp": ts,
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
            "_bar_var": s,
            "_sv": x,
            "_garch_next": g[1:],
        }
    )
