"""Which instruments a data config names: `data.path` as one file, a map name -> file, or a list of files (names
from the file stems); one file holding the contracts of several futures (e.g. NQ and ES) gives one instrument per
product root, each rolled on its own; the synthetic family (data.synthetic.instruments) names its members."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from omegaconf import DictConfig, ListConfig, OmegaConf

from migt_train.data.sources.ohlcv import read_ohlcv
from migt_train.errors import MigtError

ROOTS_VERSION = 1  # layout of the cached product roots of a file
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def _plain(value: Any) -> Any:
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


def path_entries(value: Any) -> list[tuple[str | None, str]]:
    """data.path -> [(name, file)]: a lone file gives [(None, file)] (one instrument, or one per product root
    of a multi-product file); a map {name: file} its items in order; a list its files named by their stems."""
    value = _plain(value)
    if isinstance(value, (str, Path)):
        return [(None, str(value))]
    if isinstance(value, Mapping):
        entries = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, Sequence) and not isinstance(value, (bytes, str)):
        entries = [(Path(str(v)).name.split(".")[0], v) for v in value]
        stems = [n for n, _ in entries]
        dup = sorted({n for n in stems if stems.count(n) > 1})
        if dup:
            raise MigtError(f"config key 'data.path': files with the same name {', '.join(dup)}; name them with a map "
                            "{NAME: file, ...}")
    else:
        raise MigtError(f"config key 'data.path': a file, a map name -> file or a list of files (got {value!r})")
    if not entries:
        raise MigtError("config key 'data.path': the map or list of files is empty")
    for name, file in entries:
        if not _NAME.match(name):
            raise MigtError(f"config key 'data.path': instrument name {name!r} must start with a letter or digit and "
                            "hold only letters, digits, '_', '.' and '-'")
        if not isinstance(file, (str, Path)) or not str(file):
            raise MigtError(f"config key 'data.path.{name}': must be a file path (got {file!r})")
    return [(name, str(file)) for name, file in entries]


def product_roots(contract: np.ndarray, first_year: int) -> dict[str, np.ndarray] | None:
    """The contract column of a file -> {root: row mask} when every outright contract (spreads, with '-', are
    rolls.py's to drop) is a futures contract and there are several roots; None otherwise (one instrument)."""
    from migt_train.data.sources.rolls import expiry_of

    names, codes = np.unique(np.asarray(contract, dtype=object).astype(str), return_inverse=True)
    outright = np.array(["-" not in n for n in names])
    parsed = [expiry_of(n, first_year) if o else None for n, o in zip(names, outright)]
    if any(p is None for p, o in zip(parsed, outright) if o):
        return None
    roots = sorted({p[0] for p in parsed if p is not None})
    if len(roots) < 2:
        return None
    root_of = np.array([p[0] if p is not None else "" for p in parsed], dtype=object)
    # a spread joins the root of its first leg, so rolls.py can still count (and drop) it there
    for i in np.flatnonzero(~outright):
        leg = expiry_of(names[i].split("-")[0], first_year)
        root_of[i] = leg[0] if leg is not None else ""
    per_row = root_of[codes]
    return {root: per_row == root for root in roots}


def split_by_root(raw: pd.DataFrame, source: str) -> dict[str | None, pd.DataFrame]:
    """read_ohlcv's table -> {root: its rows} for a multi-product file, else {None: the table}."""
    if "contract" not in raw:
        return {None: raw}
    first_year = int(pd.Timestamp(raw["timestamp"].min()).year) if len(raw) else 2000
    masks = product_roots(raw["contract"].to_numpy(object), first_year)
    if masks is None:
        return {None: raw}
    return {root: raw[mask].reset_index(drop=True) for root, mask in masks.items()}


def check_instruments(names: Sequence[str], run_instruments: Sequence[str] | None, cross_asset: bool) -> list[str]:
    """The model's instrument order: the run's when scoring or forecasting with a trained run (these data's
    instruments must be among them; with cross inputs all of them, since every window sees every instrument),
    else the data's own order."""
    if run_instruments is None:
        return list(names)
    unknown = [n for n in names if n not in run_instruments]
    if unknown:
        raise MigtError(f"data.path: instrument{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} not among the "
                        f"run's instruments ({', '.join(run_instruments)}); name files with a map {{NAME: file}}")
    missing = [n for n in run_instruments if n not in names]
    if cross_asset and missing:
        raise MigtError(f"data.cross_asset: the run's windows see every instrument's bars; data.path lacks "
                        f"{', '.join(missing)}")
    return list(run_instruments)


@dataclass
class Source:
    """One instrument of a data config: where its bars come from, before features."""

    name: str | None  # None: the one instrument of a lone file or of the single synthetic market
    label: str  # how messages name it (the file, "synthetic market", "syn1 of the synthetic family")
    identity: dict  # what the feature cache keys it by (data.build._processed)
    read: Callable[[], Any]  # -> sources.series.SeriesBars: bars, segment ids, roll record
    raw: Callable[[], pd.DataFrame] | None = None  # synthetic: the generated frame with its latent state
    oracle: Callable[[pd.DataFrame], Any] | None = None  # synthetic: featurised frame -> its oracle


def sources(cfg: Any, s: Any, trained: bool = False) -> list[Source]:
    """The instruments of the data config `cfg` (checked settings `s`: data.schema.DataSchema), in order.
    `trained`: s is a trained run's (sources.series.series_bars)."""
    from migt_train.data import build
    from migt_train.data.sources.series import series_bars

    if s.source == "synthetic":
        return _synthetic_sources(build.synthetic_config(s.synthetic), s)
    out: list[Source] = []
    for name, file in path_entries(s.path):
        path = Path(file).expanduser().resolve()
        if not path.is_file():
            raise MigtError(f"{path}: file not found")
        identity = {"path": str(path), "sha256": build.file_digest(path), "sort": s.sort, "timezone": s.timezone,
                    "timestamp_label": s.timestamp_label, "session_tz": s.session_tz, "session_start": s.start_minute,
                    "session_end": s.end_minute, "symbol": s.symbol}
        table = _Once(lambda p=path: read_ohlcv(p, sort=s.sort, timezone=s.timezone))
        roots = _roots(path, identity, table, s) if name is None and s.symbol is None else []
        if not roots:
            out.append(Source(name, str(path), identity, lambda t=table, p=path: series_bars(t(), s, str(p), trained)))
            continue
        split = _Once(lambda t=table, p=path: split_by_root(t(), str(p)))
        for root in roots:
            label = f"{path} ({root})"
            out.append(Source(root, label, {**identity, "root": root},
                              lambda r=root, sp=split, lb=label: series_bars(sp()[r], s, lb, trained)))
    return out


class _Once:
    """A reader called at most once (several roots of one file share its table)."""

    def __init__(self, fn: Callable[[], Any]):
        self.fn, self.value, self.done = fn, None, False

    def __call__(self) -> Any:
        if not self.done:
            self.value, self.done = self.fn(), True
        return self.value


def _roots(path: Path, identity: dict, table: _Once, s: Any) -> list[str]:
    """The product roots of a lone file holding several futures ([] for one instrument), cached by the file's
    content so a warm run does not read the file to find them."""
    from migt_train.data.sources import cache

    key = {"roots": ROOTS_VERSION, **identity}
    at = cache.cache_path(s.cache_path, "roots", key)
    known = cache.read(at)
    if known is None:
        found = list(split_by_root(table(), str(path)))
        known = pd.DataFrame({"root": [r for r in found if r is not None]}, dtype="string")
        cache.write(at, known, key)
    return [str(r) for r in known["root"]]


def _unrolled(raw: pd.DataFrame, s: Any) -> Any:
    """A generated market as the bars of one segment (no contracts, no rolls)."""
    from migt_train.data.sources.series import SeriesBars

    return SeriesBars(raw, np.zeros(len(raw), np.int64), None, None, float(s.bar_minutes))


def _synthetic_sources(syn: Any, s: Any) -> list[Source]:
    from migt_train.data import build
    from migt_train.data.synthetic import STATE_COLUMNS, SyntheticOracle, config_key
    from migt_train.data.synthetic.family import FollowerOracle, lead_columns, member_config, member_names

    key = config_key(syn, s.bar_minutes, s.session_tz, s.start_minute)

    def state(raw: pd.DataFrame, frame: pd.DataFrame, columns: list[str]) -> dict[str, np.ndarray]:
        idx = frame["_raw_row"].to_numpy()
        return {c: raw[c].to_numpy(np.float64)[idx] for c in columns}

    if int(syn.instruments) == 1:
        raw = _Once(lambda: build.synthetic_bars(syn, s))

        def oracle(frame: pd.DataFrame) -> Any:
            st = state(raw(), frame, STATE_COLUMNS)
            return SyntheticOracle(st["_bar_var"], st["_sv"], st["_garch_next"], s.horizons, syn, s.bar_minutes)

        return [Source(None, "synthetic market", {"synthetic": key}, lambda: _unrolled(raw(), s), raw, oracle)]
    family = _Once(lambda: build.synthetic_family_bars(syn, s))
    out = []
    for j, name in enumerate(member_names(int(syn.instruments))):
        member = member_config(syn, j)
        raw_j = lambda j=j: family()[j]  # noqa: E731

        def oracle(frame: pd.DataFrame, j: int = j, member: Any = member) -> Any:
            st = state(family()[j], frame, STATE_COLUMNS)
            if j == 0:
                return SyntheticOracle(st["_bar_var"], st["_sv"], st["_garch_next"], s.horizons, member, s.bar_minutes)
            lead = state(family()[j], frame, lead_columns(int(syn.lead_bars)))
            known = np.column_stack(list(lead.values())) if lead else np.zeros((len(frame), 0))
            return FollowerOracle(st["_bar_var"], st["_sv"], st["_garch_next"], known, s.horizons, member, s.bar_minutes)

        out.append(Source(name, f"{name} of the synthetic family", {"synthetic": key, "member": j},
                          lambda r=raw_j: _unrolled(r(), s), raw_j, oracle))
    return out if syn.member is None else [out[int(syn.member)]]  # one member alone: a single-instrument run


def instrument_series(cfg: Any) -> dict[str | None, Any]:
    """The bars a run with this data config reads, per instrument (export): {None: build.run_bars(cfg)} for one
    instrument; for several {name: sources.series.SeriesBars} (a synthetic member's generated bars; a file's
    front-contract series at data.bar_minutes)."""
    from migt_train.data import build
    from migt_train.data.schema import DataSchema
    from migt_train.data.sources.ohlcv import COLUMNS

    build.check_data_config(cfg)
    s = DataSchema.from_config(cfg)
    found = sources(cfg, s)
    if len(found) == 1:
        return {None: build.run_bars(cfg)}
    return {src.name: _unrolled(src.raw()[list(COLUMNS)], s) if src.raw is not None else src.read() for src in found}
