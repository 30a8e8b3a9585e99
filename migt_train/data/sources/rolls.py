"""Several futures contracts in one file -> one front-contract series cut into segments at the rolls.

The front contract of a trading day is the one that traded the larger volume on the *previous* trading day
(known when the day opens, so the choice uses no future information); it only ever moves to later expiries.
Calendar spreads (symbols with '-') are dropped. Each roll starts a new segment: features and targets are
computed per segment, so none spans a roll (see README, "Several contracts and rolls").
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from migt_train.data.sources.calendar import trading_day
from migt_train.errors import MigtError

log = logging.getLogger(__name__)

# root, month code, year (NQH4, ESZ24, FESXM2024)
_FUTURE = re.compile(r"^([A-Z0-9]+?)([FGHJKMNQUVXZ])(\d{1,4})$")
_MONTHS = {code: i + 1 for i, code in enumerate("FGHJKMNQUVXZ")}


@dataclass
class Roll:
    trading_day: str  # first trading day on the new contract (exchange calendar)
    from_contract: str
    to_contract: str
    first_bar: str  # UTC time of the new contract's first bar in the series, as the file stamps it


@dataclass
class ContractSeries:
    bars: pd.DataFrame  # timestamp, open, high, low, close, volume of the chosen rows, in time order
    segment: np.ndarray  # (N,) int64, increasing: a new value after each roll
    contract: str | None  # the selected symbol, or None for the front-contract series / a plain file
    contracts: list[str]  # outright contracts seen (after dropping spreads), in expiry order
    rolls: list[Roll]
    dropped_spreads: int = 0
    # the contract of each segment id (segment k trades segment_contracts[k]); empty for a plain file
    segment_contracts: list[str] = field(default_factory=list)

    def record(self) -> dict:
        """What rolls.json holds."""
        return {
            "symbol": self.contract,
            "contracts": self.contracts,
            "dropped_spreads": self.dropped_spreads,
            "rolls": [asdict(r) for r in self.rolls],
        }


def expiry_of(symbol: str, first_year: int) -> tuple[str, int, int] | None:
    m = _FUTURE.match(symbol.strip().upper())
    if m is None:
        return None
    root, month, digits = m.group(1), _MONTHS[m.group(2)], m.group(3)
    year = int(digits)
    if len(digits) == 1:  # the first such year from the year before the data starts on
        base = first_year - 1
        year = base + (year - base) % 10
    elif len(digits) == 2:
        year += 2000
    return root, year, month


def _ordered_contracts(names: list[str], first_year: int, source: str) -> list[int]:
    """Indices of `names` in expiry order; several roots or non-futures symbols are an error."""
    parsed = [expiry_of(n, first_year) for n in names]
    roots = {p[0] for p in parsed if p is not None}
    if any(p is None for p in parsed) or len(roots) > 1:
        shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
        raise MigtError(
            f"{source}: several instruments in one file ({shown}; {len(names)} in all) that are not contracts "
            f"of one future; pick one with data.symbol={names[0]}"
        )
    return sorted(range(len(names)), key=lambda i: parsed[i][1:])  # type: ignore[index]


def continuous_series(bars: pd.DataFrame, symbol: str | None, tz: str, session_start: int, source: str) -> ContractSeries:
    """bars from read_ohlcv (with or without `contract`) -> the series to model (see module doc)."""
    plain = bars.drop(columns=["contract"], errors="ignore")
    if "contract" not in bars:
        if symbol is not None:
            raise MigtError(f"{source}: data.symbol={symbol} but the file has no symbol or instrument_id column")
        return ContractSeries(plain.reset_index(drop=True), np.zeros(len(bars), np.int64), None, [], [])
    contract = bars["contract"].to_numpy(object)
    spread = pd.Series(contract).str.contains("-", regex=False).to_numpy()
    if symbol is not None:
        keep = contract == symbol
        if not keep.any():
            names = sorted(set(contract[~spread]))
            shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
            raise MigtError(f"{source}: data.symbol={symbol} not in the file (its contracts: {shown})")
        chosen = plain[keep].sort_values("timestamp", kind="stable", ignore_index=True)
        return ContractSeries(chosen, np.zeros(len(chosen), np.int64), symbol, [symbol], [], int(spread.sum()), [symbol])
    if spread.any():
        log.info("%s: dropped %d rows of calendar spreads", source, int(spread.sum()))
    plain, contract = plain[~spread].reset_index(drop=True), contract[~spread]
    codes, names = pd.factorize(contract)
    names = [str(n) for n in names]
    if len(names) == 0:
        raise MigtError(f"{source}: only calendar spreads in the file; no outright contract to model")
    if len(names) == 1:
        series = plain.sort_values("timestamp", kind="stable", ignore_index=True)
        return ContractSeries(series, np.zeros(len(series), np.int64), None, names, [], int(spread.sum()), names)

    ts = plain["timestamp"].to_numpy().astype("datetime64[ns]")
    first_year = int(pd.Timestamp(ts.min()).year)
    order = _ordered_contracts(names, first_year, source)
    rank_of = np.empty(len(names), np.int64)
    rank_of[order] = np.arange(len(names))
    rank = rank_of[codes]
    days, day_idx = np.unique(trading_day(ts, tz, session_start), return_inverse=True)
    volume = np.zeros((len(days), len(names)))
    np.add.at(volume, (day_idx, rank), plain["volume"].to_numpy(np.float64))
    traded = np.zeros((len(days), len(names)), dtype=bool)
    traded[day_idx, rank] = True

    # one decision per trading day (a few hundred a year), not per row; the first day has no previous
    # day, so it starts on its own busiest contract
    front = np.empty(len(days), np.int64)
    current = int(np.argmax(volume[0]))
    for d in range(len(days)):
        if d > 0:
            leader = int(np.argmax(volume[d - 1]))
            current = max(current, leader)
        if not traded[d, current]:  # the front stopped trading (expired): the busiest later contract
            later = np.flatnonzero(traded[d, current:])
            if len(later):
                current += int(later[np.argmax(volume[d, current + later])])
        front[d] = current

    chosen = rank == front[day_idx]
    series = plain[chosen].copy()
    series["_day"] = day_idx[chosen]
    series = series.sort_values("timestamp", kind="stable", ignore_index=True)
    seg_of_day = np.concatenate([[0], np.cumsum(front[1:] != front[:-1])]).astype(np.int64)
    segment = seg_of_day[series.pop("_day").to_numpy()]
    rolls = []
    for d in np.flatnonzero(front[1:] != front[:-1]) + 1:
        first = series["timestamp"].to_numpy()[np.searchsorted(segment, seg_of_day[d])]
        rolls.append(Roll(str(days[d]), names[order[front[d - 1]]], names[order[front[d]]],
                          pd.Timestamp(first).tz_localize("UTC").isoformat()))
        log.info("%s: roll on %s from %s to %s", source, days[d], rolls[-1].from_contract, rolls[-1].to_contract)
    held = front[np.r_[0, np.flatnonzero(front[1:] != front[:-1]) + 1]]  # the front of each segment
    return ContractSeries(series, segment, None, [names[i] for i in order], rolls, int(spread.sum()),
                          [names[order[f]] for f in held])
