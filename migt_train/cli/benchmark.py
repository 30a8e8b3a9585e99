"""`python -m migt_train.benchmark`: one preset over several data sets (and seeds), one table of the results.

    python -m migt_train.benchmark [--experiment NAME] [--sets synthetic|FILE] [--seeds 42 43 44] [--out DIR]
                                   [key=value ...]

Each (set, seed) is two real runs, each its own process through `migt_train.train` (the code path of
`python run.py`): the preset trained, and the same config with `trainer.max_epochs=0` (the initial weights,
evaluated), in <out>/<set>/seed<seed> and <out>/<set>/seed<seed>-initial. The table (benchmark.md,
benchmark.csv, horizons.csv, benchmark.json in <out>; migt_train/evaluation/benchmark.py) is built from
their metrics.json. A sets file is YAML: `sets: [{name: ..., overrides: [key=value, ...]}, ...]`
(conf/benchmark/synthetic.yaml, the default, holds the synthetic markets). Rerunning with the same --out
reuses the runs that finished with the same overrides.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import yaml

from migt_train.cli.common import parse, parser as cli_parser, run_main
from migt_train.config.compose import CONF_DIR, compose_config
from migt_train.errors import MigtError

SETS_DIR = CONF_DIR / "benchmark"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# the child process: one run as `python run.py <overrides>` does it, an error as one line
CHILD = """
import sys
import migt_train
from migt_train.errors import MigtError
try:
    migt_train.train(sys.argv[1:])
except MigtError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
"""


def load_sets(spec: str) -> list[dict[str, Any]]:
    """`spec`: a name in conf/benchmark/ or a YAML file -> [{name, overrides}], checked."""
    path = Path(spec)
    if not path.suffix and not path.exists():
        path = SETS_DIR / f"{spec}.yaml"
    try:
        doc = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise MigtError(f"--sets {spec}: no such file ({path})") from None
    except (OSError, yaml.YAMLError) as e:
        raise MigtError(f"{path}: not readable as YAML ({' '.join(str(e).split())})") from None
    items = doc.get("sets") if isinstance(doc, dict) else None
    if not isinstance(items, list) or not items:
        raise MigtError(f"{path}: needs a non-empty list under 'sets:' of {{name, overrides}}")
    sets, seen = [], set()
    for i, item in enumerate(items):
        where = f"{path}: sets[{i}]"
        if not isinstance(item, dict) or set(item) - {"name", "overrides"} or "name" not in item:
            raise MigtError(f"{where}: must be a mapping with a name and (optional) overrides")
        name, overrides = str(item["name"]), item.get("overrides") or []
        if not NAME.match(name) or name in seen or name == "mean":
            raise MigtError(f"{where}: name {name!r} must be unique, not 'mean', and letters, digits, _ . - only")
        if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
            raise MigtError(f"{where}: overrides must be a list of key=value strings")
        seen.add(name)
        sets.append({"name": name, "overrides": list(overrides)})
    return sets


def default_experiment() -> str:
    """The preset `python run.py` runs without an experiment= override (conf/config.yaml's defaults)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return str(compose(config_name="config", return_hydra_config=True).hydra.runtime.choices.experiment)


def _recorded_overrides(run_dir: Path) -> list[str] | None:
    try:
        return [str(o) for o in yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text()) or []]
    except (OSError, yaml.YAMLError):
        return None


def _finished(run_dir: Path, overrides: list[str]) -> bool:
    """A completed run of exactly these overrides (reused); any other content of the dir is an error."""
    from migt_train.run.record import read_status

    if not run_dir.exists():
        return False
    task = [o for o in overrides if not o.startswith("hydra.")]  # Hydra records its own keys elsewhere
    if read_status(run_dir).get("status") == "completed" and _recorded_overrides(run_dir) == task:
        return True
    raise MigtError(f"{run_dir}: holds another or an unfinished run; remove it or choose another --out")


def run_one(run_dir: Path, overrides: list[str], label: str) -> None:
    """One run in its own process (or an earlier benchmark's finished run of the same overrides, reused)."""
    overrides = [*overrides, f"hydra.run.dir={run_dir}"]
    if _finished(run_dir, overrides):
        print(f"{label}: reusing {run_dir}", flush=True)
        return
    log = run_dir.parent / f"{run_dir.name}.out"
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with log.open("w") as f:
        p = subprocess.run([sys.executable, "-c", CHILD, *overrides], stdout=f, stderr=subprocess.STDOUT, check=False)
    seconds = time.perf_counter() - t0
    if p.returncode:
        lines = [ln for ln in log.read_text().splitlines() if ln.strip()]
        why = next((ln for ln in reversed(lines) if ln.startswith("error:")), lines[-1] if lines else "no output")
        raise MigtError(f"{label}: the run failed (exit {p.returncode}; {log}): {why}")
    print(f"{label}: {seconds:.0f} s, {run_dir}", flush=True)


def benchmark(experiment: str, sets: list[dict[str, Any]], seeds: Sequence[int], out: Path,
              extra: Sequence[str], initial: bool = True) -> str:
    """Run every (set, seed) and write the tables into `out`; returns the markdown table."""
    from migt_train.config.schema import validate
    from migt_train.evaluation.benchmark import run_figures, write_tables

    plans = []
    for s in sets:  # every config composes and validates before the first run starts
        overrides = [f"experiment={experiment}", *s["overrides"], *extra, "trainer.progress=false"]
        try:
            validate(compose_config(overrides))
        except MigtError as e:
            raise MigtError(f"set {s['name']}: {e}") from None
        plans.append((s["name"], overrides))
    runs: dict[str, list[dict[str, Any]]] = {}
    for name, overrides in plans:
        for seed in seeds:
            run_dir = (out / name / f"seed{seed}").resolve()
            run_one(run_dir, [*overrides, f"seed={seed}"], f"{name} seed {seed}")
            init_dir = None
            if initial:
                init_dir = run_dir.with_name(f"seed{seed}-initial")
                run_one(init_dir, [*overrides, f"seed={seed}", "trainer.max_epochs=0"], f"{name} seed {seed} initial weights")
            runs.setdefault(name, []).append(run_figures(run_dir, init_dir))
    meta = {"experiment": experiment, "seeds": list(seeds), "extra_overrides": list(extra),
            "set_overrides": {s["name"]: s["overrides"] for s in sets}}
    return write_tables(out, runs, meta)


def main(argv: list[str] | None = None) -> int:
    p = cli_parser("benchmark", __doc__)
    p.add_argument("--experiment", default=None, help="the preset to run (default: run.py's default preset)")
    p.add_argument("--sets", default="synthetic", help="a name in conf/benchmark/ or a YAML file of {name, overrides}")
    p.add_argument("--seeds", type=int, nargs="+", default=[42], help="seeds of every set (default: 42, run.py's)")
    p.add_argument("--out", type=Path, default=None, help="where runs and tables go (default outputs/benchmarks/<time>)")
    p.add_argument("--no-initial", action="store_true", help="skip the initial-weights runs (trainer.max_epochs=0)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="applied to every run, e.g. trainer.max_epochs=2")
    args = parse(p, argv)
    if isinstance(args, int):
        return args

    def body() -> int:
        if len(set(args.seeds)) != len(args.seeds):
            raise MigtError(f"--seeds: each seed once (got {' '.join(map(str, args.seeds))})")
        sets = load_sets(args.sets)
        experiment = args.experiment or default_experiment()
        out = args.out or Path("outputs") / "benchmarks" / time.strftime("%Y-%m-%d_%H-%M-%S")
        md = benchmark(experiment, sets, args.seeds, out, args.overrides, initial=not args.no_initial)
        print(md)
        print(f"tables: {out / 'benchmark.md'}, benchmark.csv, horizons.csv, benchmark.json")
        return 0

    return run_main(body)
