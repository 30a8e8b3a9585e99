"""The in-memory market: one contiguous feature tensor plus indices, batched by vectorised gather."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, Protocol, Sequence

import numpy as np
import torch

# the keys of MarketData.batch the model takes as its `time` dict: the calendar, plus what is known at the
# forecast origin about the horizons ahead (vol_anchor (B, H), realized (B, K), events (B, H, E); see
# volatility/anchor.py, volatility/realized.py and volatility/events.py), and whose window it is (instrument
# (B,), the model's instrument id: 0 unless several instruments are pooled); a model that does not use them
# ignores them
TIME_KEYS = ("bar_in_day", "day_of_week", "day_of_month", "day_of_year", "vol_anchor", "realized", "events", "instrument")
# the keys of MarketData.batch a training or evaluation step moves to the device
BATCH_KEYS = ("features", "mask", *TIME_KEYS, "targets")


class Oracle(Protocol):
    """True conditional quantiles of a synthetic market."""

    def quantiles(self, rows: np.ndarray, levels: Sequence[float]) -> np.ndarray:
        """rows: (n,) row indices into the MarketData arrays -> (n, H, Q) log-return quantiles."""
        ...


@dataclass
class MarketData:
    """Bars after feature warm-up, row i = bar i. Samples are rows; a sample's window ends at its row.

    features (N, V) float32 · time arrays (N,) int64 in exchange time · window_start (N,) int64 =
    first row inside row i's lookback · targets (N, H) float32 log returns (NaN past the data end) ·
    splits: name -> sorted int64 sample rows.
    """

    features: torch.Tensor
    feature_names: list[str]
    timestamps: np.ndarray  # (N,) datetime64[ns], UTC
    bar_in_day: torch.Tensor
    day_of_week: torch.Tensor  # 0 = Monday, of the Globex trading day the bar belongs to
    day_of_month: torch.Tensor  # 1..31
    day_of_year: torch.Tensor  # 1..366
    window_start: torch.Tensor
    targets: torch.Tensor
    horizons: list[int]
    horizon_names: list[str]
    bar_minutes: int
    max_seq_len: int
    splits: dict[str, torch.Tensor]
    source: str
    oracle: Oracle | None = None
    # contracts and rolls of a file (rolls.json); None for the synthetic market
    rolls: dict[str, Any] | None = None
    close: np.ndarray | None = None  # (N,) float64 close price of each row, for forecasts in price units
    # (N, H) causal std of each horizon's return (data.vol_anchor; ones when off) and (N, H, E) the
    # scheduled-release features (data.event_calendar; E = 0 when off)
    vol_anchor: torch.Tensor | None = None
    events: torch.Tensor | None = None
    # (N, K) with the anchor: log realised range variance over the anchor's expectation, per trailing window
    # (volatility/realized.py; K = 0 without the anchor)
    realized: torch.Tensor | None = None
    # data.cross_asset with the anchor: the last n_cross columns of `realized` are every instrument's recent bar
    # moves at the row's bar start (data/cross_asset.cross_moves)
    n_cross: int = 0
    # the fitted volatility anchor (data.vol_anchor: data.vol_anchor.AnchorFit; a run stores it as vol_anchor.json)
    anchor_fit: Any = None
    # several instruments pooled (data/pooled.py): the model's instrument names (its ids index them) and each
    # row's id; rows are one block per instrument in id order. [] and zeros for one instrument. Then `oracle`,
    # `rolls` and `anchor_fit` are per instrument ({name: ...}; the oracle one that answers each block).
    instruments: list[str] = field(default_factory=list)
    instrument: torch.Tensor | None = None
    _steps: torch.Tensor = field(init=False, repr=False)
    _full: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        n, h = self.targets.shape
        if self.vol_anchor is None:
            self.vol_anchor = torch.ones(n, h, device=self.features.device)
        if self.events is None:
            self.events = torch.zeros(n, h, 0, device=self.features.device)
        if self.realized is None:
            self.realized = torch.zeros(n, 0, device=self.features.device)
        if self.instrument is None:
            self.instrument = torch.zeros(n, dtype=torch.long, device=self.features.device)
        self._steps = torch.arange(self.max_seq_len, dtype=torch.long, device=self.features.device)
        # host-side: whether row i's window has all max_seq_len bars (no padding), read per batch
        # without touching the device
        start = self.window_start.cpu()
        self._full = torch.arange(len(start)) - start >= self.max_seq_len - 1

    def to(self, device: torch.device | str) -> "MarketData":
        """The same market with its tensors on `device` (the split indices stay on the host, where the
        sampler works). The whole market is small (the NQ history is tens of MB), so a GPU keeps it
        resident and builds every batch by a gather on the device: no host copy per step."""
        device = torch.device(device)
        if self.features.device == device:
            return self
        moved = {f.name: getattr(self, f.name).to(device) for f in fields(self)
                 if f.init and isinstance(getattr(self, f.name), torch.Tensor)}  # every per-row tensor
        return replace(self, **moved)

    def full_windows(self, rows: torch.Tensor) -> bool:
        """Whether every sample in the host tensor `rows` has a full window (no padded bar)."""
        return bool(self._full[rows].all())

    @property
    def n_instruments(self) -> int:
        """The model's instruments: 1 unless several are pooled."""
        return max(1, len(self.instruments))

    @property
    def n_features(self) -> int:
        return self.features.shape[1]

    @property
    def bars_per_day(self) -> int:
        """Period of the time-of-day encoding: bar slots in 24 h (not only the traded ones)."""
        return 24 * 60 // self.bar_minutes

    def batch(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        """Windows ending at `rows` (B,), left-padded to max_seq_len: one gather, no Python per sample.

        Returns features (B, T, V) (zeros where padded), mask (B, T) True = real bar, bar_in_day (B, T),
        day_of_week / day_of_month / day_of_year (B,), vol_anchor (B, H), events (B, H, E), instrument (B,),
        targets (B, H), rows (B,).
        """
        rows = rows.to(self.features.device)
        pos = rows[:, None] - (self.max_seq_len - 1) + self._steps
        mask = pos >= self.window_start[rows][:, None]
        pos = torch.where(mask, pos, rows[:, None])  # padded steps read a valid row, then get zeroed
        return {
            "features": self.features[pos].masked_fill_(~mask[..., None], 0.0),
            "mask": mask,
            "bar_in_day": self.bar_in_day[pos].masked_fill_(~mask, 0),
            "day_of_week": self.day_of_week[rows],
            "day_of_month": self.day_of_month[rows],
            "day_of_year": self.day_of_year[rows],
            "vol_anchor": self.vol_anchor[rows],
            "events": self.events[rows],
            "realized": self.realized[rows],
            "instrument": self.instrument[rows],
            "targets": self.targets[rows],
            "rows": rows,
        }

    def split_targets(self, split: str) -> torch.Tensor:
        return self.targets[self.splits[split]]

    def visible_bars(self, split: str = "train") -> slice:
        """The bars the split's windows can see: from its first window's start to its last row."""
        rows = self.splits[split]
        return slice(int(self.window_start[rows[0]]), int(rows[-1]) + 1)

    def feature_stats(self, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
        """Per-variable mean and std over the bars that the split's windows can see (no look-ahead); pooled:
        (I, V), each instrument's over its own bars."""
        if self.n_instruments > 1:
            return self._per_instrument(lambda d: d.feature_stats(split))
        x = self.features[self.visible_bars(split)].double()
        return x.mean(0).float(), x.std(0).clamp_min(1e-8).float()

    def target_stats(self, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
        """Per-horizon mean and std of the split's targets, for loss standardisation; pooled: (I, H), each
        instrument's own."""
        if self.n_instruments > 1:
            return self._per_instrument(lambda d: d.target_stats(split))
        y = self.split_targets(split).double()
        return y.mean(0).float(), y.std(0).clamp_min(1e-12).float()

    def _per_instrument(self, stats) -> tuple[torch.Tensor, torch.Tensor]:
        """stats(single-instrument market) -> (a, b) stacked over the model's instruments (all must have rows)."""
        from migt_train.data.pooled import instrument_view

        parts = [stats(instrument_view(self, name)) for name in self.instruments]
        return torch.stack([p[0] for p in parts]), torch.stack([p[1] for p in parts])

    def anchored_quantiles(self, levels: Sequence[float], split: str = "train") -> torch.Tensor:
        """(H, Q) empirical quantiles of the split's targets in units of the volatility anchor (y / sigma_h):
        where the anchored model's heads start."""
        rows = self.splits[split]
        z = (self.targets[rows].double() / self.vol_anchor[rows].double()).cpu()
        q = torch.tensor([float(t) for t in levels], dtype=torch.float64)
        return torch.quantile(z, q, dim=0).T.float().contiguous()
