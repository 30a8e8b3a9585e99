"""data.synthetic.instruments > 1: a family of correlated index-like markets, each with its own oracle.

Every member is the single market of generator.py (same calendar, profile, releases, GJR-GARCH and jumps)
with three links between them:

    x^j_t = x^c_t + x^i,j_t            log-SV: a common factor (share `common_vol_share` of its variance)
                                       plus the member's own, both AR(1) with the same persistence, so each
                                       member's log-SV is the single market's in law
    z^0_t ~ Student-t                  member 0 (syn0) leads
    z^j_t = sqrt(c) z^0_{t-L} + sqrt(1 - c) e^j_t   the others follow its shocks `lead_bars` = L bars later
                                       (c = `common_shock_share`), plus their own Student-t shocks e^j

and member j's volatility level is annual_vol * (1 + VOL_STEP * j). At bar t a follower's shocks of the next
L bars are partly known to whoever watches the leader: its oracle conditions on them (the leader's z of bars
t-L+1..t, kept as state columns), so the followers' oracles are sharper than their own history allows, which
cross inputs (data.cross_asset) can reach and a single-instrument model cannot.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np
import pandas as pd

from migt_train.data.sources.calendar import globex_bars
from migt_train.data.synthetic.generator import SyntheticConfig, ar1, bars_from_shocks, per_bar, student_t

VOL_STEP = 0.25  # member j's annual_vol multiplier is 1 + VOL_STEP * j
LEAD_COLUMN = "_lead_z{}"  # state column k (1..L): the leader's shock of bar t + k - L


def member_names(n: int) -> list[str]:
    return [f"syn{j}" for j in range(n)]


def member_config(cfg: SyntheticConfig, j: int) -> SyntheticConfig:
    """Member j's own market parameters (its volatility level and price)."""
    return replace(cfg, annual_vol=cfg.annual_vol * (1.0 + VOL_STEP * j), price0=cfg.price0 / (1.0 + j))


def lead_columns(lead_bars: int) -> list[str]:
    return [LEAD_COLUMN.format(k) for k in range(1, lead_bars + 1)]


def generate_family(cfg: SyntheticConfig, bar_minutes: int, tz: str, session_start: int) -> list[pd.DataFrame]:
    """One frame per member, as generate() returns for the single market (bars + STATE_COLUMNS), the
    followers with the lead_columns as well. Deterministic in (cfg, bar_minutes, tz, session_start)."""
    ts, minute = globex_bars(cfg.start, cfg.n_days, bar_minutes, tz, session_start)
    n, lead = len(ts), int(cfg.lead_bars)
    rng = np.random.default_rng([cfg.seed, 0xFA17])
    pb = per_bar(cfg, bar_minutes)
    share, c = float(cfg.common_vol_share), float(cfg.common_shock_share)
    x_common = ar1(pb.phi, pb.s_eta * np.sqrt(share) * rng.standard_normal(n), cfg.sv_std * np.sqrt(share) * rng.standard_normal())
    # the leader's shocks, with L more before the first bar (the followers' first bars follow those)
    z_lead = student_t(rng, cfg.student_t_df, n + lead)
    frames = []
    for j in range(int(cfg.instruments)):
        member = member_config(cfg, j)
        mrng = np.random.default_rng([cfg.seed, 0xFA17, j + 1])
        own = np.sqrt(1.0 - share)
        x = x_common + ar1(pb.phi, pb.s_eta * own * mrng.standard_normal(n), cfg.sv_std * own * mrng.standard_normal())
        if j == 0:
            z = z_lead[lead:]
        else:
            z = np.sqrt(c) * z_lead[:n] + np.sqrt(1.0 - c) * student_t(mrng, cfg.student_t_df, n)
        frame = bars_from_shocks(member, pb, ts, minute, bar_minutes, z, x, mrng)
        if j > 0:
            for k, col in enumerate(lead_columns(lead), start=1):
                frame[col] = z_lead[k: n + k]  # the leader's shock of bar t + k - L
        frames.append(frame)
    return frames


class FollowerOracle:
    """A follower's true conditional quantiles, by Monte Carlo from its latent state and the leader's known
    shocks: z of step k is sqrt(c) * (the leader's shock, known for k <= L) + sqrt(1 - c) * its own. The
    GARCH factor then depends on the row through the known shocks, so each row's paths are simulated
    (common random numbers across rows: answers are deterministic and smooth in the state)."""

    def __init__(self, bar_var: np.ndarray, sv: np.ndarray, garch_next: np.ndarray, lead_z: np.ndarray,
                 horizons: Sequence[int], cfg: SyntheticConfig, bar_minutes: int) -> None:
        self.horizons = [int(h) for h in horizons]
        self.max_h = max(self.horizons)
        self.bar_var = np.concatenate([bar_var, np.full(self.max_h, np.nan)])
        self.sv, self.garch_next = sv, garch_next
        self.lead_z = np.asarray(lead_z, dtype=np.float32)  # (N, L)
        self.c = float(cfg.common_shock_share)
        self.sv_std = cfg.sv_std
        pb = per_bar(cfg, bar_minutes)
        self.pb = pb
        paths = max(int(cfg.oracle_paths), 2)
        rng = np.random.default_rng([cfg.seed, 0x0_5AC1E, 0xFA17])
        shape = (self.max_h, paths)
        self.lead_t = student_t(rng, cfg.student_t_df, shape).astype(np.float32)
        self.own_t = student_t(rng, cfg.student_t_df, shape).astype(np.float32)
        eta = rng.standard_normal(shape)
        jump = (rng.random(shape) < pb.jump_prob) * rng.standard_normal(shape) * cfg.jump_scale
        e = np.zeros(shape)
        for k in range(self.max_h):
            e[k] = (pb.phi * e[k - 1] if k else 0.0) + pb.s_eta * eta[k]
        self.sv_path = np.exp(e).astype(np.float32)
        self.jump32 = (jump * np.sqrt(self.sv_path)).astype(np.float32)
        self.phi_k = pb.phi ** np.arange(1, self.max_h + 1)

    def quantiles(self, rows: np.ndarray, levels: Sequence[float], chunk: int = 256) -> np.ndarray:
        """rows (n,) MarketData rows -> (n, H, Q) log-return quantiles (NaN where past the data end)."""
        rows = np.asarray(rows, dtype=np.int64).ravel()
        lv = np.asarray(levels, dtype=np.float64)
        if len(rows) and (rows.min() < 0 or rows.max() >= len(self.sv)):
            raise IndexError(f"oracle rows must be in [0, {len(self.sv)})")
        out = np.empty((len(rows), len(self.horizons), len(lv)))
        hset = {h: j for j, h in enumerate(self.horizons)}
        steps = np.arange(1, self.max_h + 1)
        lead, a, gam, b, c0 = self.lead_z.shape[1], self.pb.alpha, self.pb.gamma, self.pb.beta, self.pb.garch_const
        sc, so = np.float32(np.sqrt(self.c)), np.float32(np.sqrt(1.0 - self.c))
        for lo in range(0, len(rows), chunk):
            rr = rows[lo: lo + chunk]
            level = np.exp(self.phi_k[None, :] * self.sv[rr][:, None] - self.sv_std**2 / 2)
            scale = (self.bar_var[rr[:, None] + steps[None, :]] * level).astype(np.float32)
            g = np.broadcast_to(self.garch_next[rr].astype(np.float32)[:, None], (len(rr), self.own_t.shape[1])).copy()
            cum = np.zeros_like(g)
            for k in range(self.max_h):
                known = self.lead_z[rr, k][:, None] if k < lead else self.lead_t[k][None, :]
                z = sc * known + so * self.own_t[k][None, :]
                cum += np.sqrt(scale[:, k: k + 1] * self.sv_path[k][None, :] * g) * z
                cum += np.sqrt(scale[:, k: k + 1]) * self.jump32[k][None, :]
                g = c0 + ((a + gam * (z < 0)) * z * z + b) * g
                if k + 1 in hset:
                    out[lo: lo + len(rr), hset[k + 1]] = np.quantile(cum, lv, axis=1).T + self.pb.drift * (k + 1)
        return out
