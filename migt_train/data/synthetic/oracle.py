"""The synthetic market's oracle: the true conditional quantiles of every horizon's return, known
because the generator (generator.py) knows its latent state after every bar and the release schedule."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from migt_train.data.synthetic.generator import SyntheticConfig, per_bar, student_t


class SyntheticOracle:
    """True conditional quantiles of each horizon's log return, by Monte Carlo from the latent state.

    Arrays are aligned to MarketData rows. All rows share the same random paths (common random numbers,
    antithetic), so answers are deterministic and smooth in the state. The log-SV and GARCH recursions are
    linear in the starting state, so per-path coefficients are precomputed once and each query costs a
    few array operations per (row, path, step).
    """

    def __init__(
        self,
        bar_var: np.ndarray,
        sv: np.ndarray,
        garch_next: np.ndarray,
        horizons: Sequence[int],
        cfg: SyntheticConfig,
        bar_minutes: int,
    ) -> None:
        self.horizons = [int(h) for h in horizons]
        self.max_h = max(self.horizons)
        self.bar_var = np.concatenate([bar_var, np.full(self.max_h, np.nan)])
        self.sv = sv
        self.garch_next = garch_next
        self.sv_std = cfg.sv_std
        pb = per_bar(cfg, bar_minutes)
        self.drift = pb.drift
        half = max(cfg.oracle_paths // 2, 1)
        rng = np.random.default_rng([cfg.seed, 0x0_5AC1E])
        z = student_t(rng, cfg.student_t_df, (half, self.max_h))
        z = np.concatenate([z, -z]).T.copy()  # (max_h, P) antithetic; the leverage term differs per half
        eta = rng.standard_normal((half, self.max_h))
        eta = np.concatenate([eta, eta]).T
        jump = (rng.random((half, self.max_h)) < pb.jump_prob) * rng.standard_normal((half, self.max_h))
        jump = np.concatenate([jump, -jump]).T * cfg.jump_scale
        # x_{t+k} = phi^k x_t + e_k  and  g_{t+k} = A_k + B_k g_{t+1}; with volume leading by L bars, bar t+k's
        # variance has x_{t+k-L}: known (the stored path) for k <= L, else phi^(k-L) x_t + e_{k-L}
        self.lead = int(cfg.volume_lead_bars)
        ahead = np.arange(1, self.max_h + 1) - self.lead
        self.phi_k = np.where(ahead > 0, pb.phi ** np.maximum(ahead, 0), 0.0)
        self.known_offset = np.minimum(ahead, 0)  # row offset of the known state (0: none needed)
        e = np.zeros_like(eta)
        a_k, b_k = np.zeros_like(eta), np.ones_like(eta)
        for k in range(self.max_h):
            e[k] = (pb.phi * e[k - 1] if k else 0.0) + pb.s_eta * eta[k]
            if k:
                m = (pb.alpha + pb.gamma * (z[k - 1] < 0)) * z[k - 1] ** 2 + pb.beta
                a_k[k] = pb.garch_const + m * a_k[k - 1]
                b_k[k] = m * b_k[k - 1]
        if self.lead:  # step k draws the innovations of step k - L
            e = np.concatenate([np.zeros((min(self.lead, self.max_h), e.shape[1])), e[: max(self.max_h - self.lead, 0)]])
        sv_path = np.exp(e)
        self.coef_a = (sv_path * a_k).astype(np.float32)
        self.coef_b = (sv_path * b_k).astype(np.float32)
        self.z32 = z.astype(np.float32)
        # jump of step k per path, before the row's bar variance and SV level: jump * sqrt(exp(e_k))
        self.jump32 = (jump * np.sqrt(sv_path)).astype(np.float32)

    def quantiles(self, rows: np.ndarray, levels: Sequence[float], chunk: int = 1024) -> np.ndarray:
        """rows (n,) MarketData rows -> (n, H, Q) log-return quantiles (NaN where past the data end)."""
        rows = np.asarray(rows, dtype=np.int64).ravel()
        lv = np.asarray(levels, dtype=np.float64)
        if len(rows) and (rows.min() < 0 or rows.max() >= len(self.sv)):
            raise IndexError(f"oracle rows must be in [0, {len(self.sv)})")
        out = np.empty((len(rows), len(self.horizons), len(lv)))
        hset = {h: j for j, h in enumerate(self.horizons)}
        steps = np.arange(1, self.max_h + 1)
        for lo in range(0, len(rows), chunk):
            rr = rows[lo : lo + chunk]
            # per-row scale of step k: deterministic bar variance x SV factor carried forward
            x = self.phi_k[None, :] * self.sv[rr][:, None]
            if self.lead:
                known = self.sv[np.maximum(rr[:, None] + self.known_offset[None, :], 0)]
                x = np.where(self.known_offset[None, :] < 0, known, x)
                x = np.where((self.known_offset == 0)[None, :] & (self.phi_k == 0)[None, :], self.sv[rr][:, None], x)
            level = np.exp(x - self.sv_std**2 / 2)
            scale = (self.bar_var[rr[:, None] + steps[None, :]] * level).astype(np.float32)
            jump_sd = np.sqrt(scale)
            g1 = self.garch_next[rr].astype(np.float32)[:, None]
            cum = np.zeros((len(rr), self.z32.shape[1]), dtype=np.float32)
            for k in range(self.max_h):
                var = self.coef_a[k][None, :] + self.coef_b[k][None, :] * g1
                var *= scale[:, k : k + 1]
                np.sqrt(var, out=var)
                var *= self.z32[k][None, :]
                cum += var
                cum += jump_sd[:, k : k + 1] * self.jump32[k][None, :]
                if k + 1 in hset:
                    q = np.quantile(cum, lv, axis=1).T + self.drift * (k + 1)
                    out[lo : lo + len(rr), hset[k + 1]] = q
        return out
