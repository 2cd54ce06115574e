"""Sweeps: a base experiment × a grid (× per-preset variants) × seeds, trained one after another.

A sweep file (TOML; configs/sweep-*.toml reproduce the paper's studies):

    [sweep]
    name = "table2"              # the study name, written into every result row
    out = "sweeps/table2"        # results.jsonl and runs/ go here (relative to the working dir)
    seeds = [1, 2, 3]            # training seeds (train.seed) of every grid point
    keep = []                    # run files kept after a run (default: only the small JSON ones)

    [base]                       # any config keys, flat or in sections, as `softbpr train --config`
    epochs = 300
    [base.train]
    batch_size = 2048

    [grid]                       # key -> list of values; the runs are the cartesian product
    lr = [5e-4, 1e-3]
    dataset = [{ data = "../shared/data/gowalla", label = "gowalla" }, { data = "synthetic" }]

    [[variants]]                 # optional: one grid per variant (e.g. per preset), each
    preset = "rns"               # combined with [grid]; its keys override [grid]'s
    [[variants]]
    preset = "sdns"
    pool_size = [8, 16]
    alpha = [0.9, 0.8]

    [quick]                      # optional: extra overrides of --quick (see QUICK)

A grid value that is a table is a bundle of keys set together (`label` names it; under the key
`dataset` the label is the dataset's name in reports). Precedence, lowest first: config defaults
< [base] < grid point < --quick < --set. Each run is an ordinary `softbpr.fit` run directory
runs/<readable>-<hash>-s<seed>, where the hash covers the explicit keys of the point (not the
seed, not the device), so the name is the same every time the sweep is expanded. A run whose
result.json exists is skipped; one with a state.pt resumes where it stopped; a diverged run leaves
failed.json and is skipped (--retry-failed retries it). Each finished run appends one JSON row to
results.jsonl: study, run, point_id, point, labels, dataset, method, model, seed, config (every
flat key), best_epoch, valid, test, seconds, epochs, status.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path

from .config import FLAT, SECTIONS, ConfigError, Experiment, build, culprit, merge
from .rundir import HEAVY, RunDir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

QUICK: dict = {"data": "synthetic-small", "epochs": 2, "eval_every": 1, "patience": 0, "dim": 16,
               "gen_pretrain_epochs": 1}
"""--quick: the default dataset, 2 epochs, small embeddings, first grid value, first seed: every
study runs in seconds (CI). The data section is reset first, so dataset-specific keys (format,
columns, split) do not leak onto the synthetic data."""

RESULTS = "results.jsonl"
"""The sweep folder's table of finished runs (one JSON row per run); runs are in <out>/runs/.
After a finished run its heavy files (rundir.HEAVY) are removed unless listed in [sweep] keep:
a sweep has hundreds of runs and plots/reports need only the JSON files."""

# keys that do not change what is learned: left out of a point's identity (its hash)
_NOT_IDENTITY = {("train", "seed"), ("train", "device"), ("train", "checkpoint_every"),
                 ("eval", "batch_users")}
# Run-name prefixes. Run names are part of the on-disk format (a rerun finds its finished runs
# by name), so these are frozen here rather than derived from display labels (α, λ, ...):
# changing one would rename, and rerun, every existing run of a sweep.
_SHORT = {"pool_size": "H", "alpha": "a", "preset": "", "model": "", "sampler": "", "loss": ""}
_INV_FLAT = {v: k for k, v in FLAT.items()}


@dataclass(frozen=True)
class Sweep:
    name: str
    out: Path
    seeds: tuple[int, ...]
    base: dict
    grid: dict
    variants: tuple[dict, ...] = ({},)
    keep: tuple[str, ...] = ()
    overrides: dict = field(default_factory=dict)
    """--set keys (highest precedence)."""
    quick: dict | None = None
    """Overrides of --quick (QUICK + the file's [quick]); None when not quick."""


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: a grid point and a seed."""

    point: dict
    """The point's own keys (grid + variant, bundles flattened), as in the file."""
    labels: dict
    """grid key -> label of a bundle value (e.g. {"dataset": "gowalla"})."""
    point_id: str
    seed: int
    exp: Experiment
    name: str
    """Run directory name under <out>/runs/."""

    @property
    def dataset(self) -> str | None:
        return self.labels.get("dataset")


def parse_value(text: str):
    """A --set / --only value: a TOML literal (5e-4, 16, true, [1, 2]) or else a plain string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _pairs(items):
    for it in items or ():
        k, eq, v = it.partition("=")
        if not eq or not k.strip():
            raise ConfigError(f"expected KEY=VALUE, got {it!r}")
        yield k.strip().replace("-", "_"), parse_value(v.strip())


def parse_assignments(items) -> dict:
    """--set KEY=VALUE strings -> {key: value} (a key given twice: the last value)."""
    return dict(_pairs(items))


def parse_only(items) -> dict:
    """--only KEY=VALUE strings -> {key: (values, ...)}: a key given twice matches either value
    (`--only preset=dns --only preset=sdns`), different keys must all match."""
    out: dict = {}
    for k, v in _pairs(items):
        out.setdefault(k, []).append(v)
    return {k: tuple(v) for k, v in out.items()}


def only_values(v) -> tuple:
    """The values an `only` entry accepts: parse_only's tuple, or one value (from Python)."""
    return v if isinstance(v, tuple) else (v,)


def describe_only(only: dict) -> str:
    """`only` as the --only flags that would give it, for messages: "preset=dns preset=sdns"."""
    return " ".join(f"{k}={w}" for k, v in only.items() for w in only_values(v))


def _nest_dotted(d: dict) -> dict:
    """{'train.lr': 1e-3} -> {'train': {'lr': 1e-3}} so config.merge accepts dotted keys."""
    out: dict = {}
    for k, v in d.items():
        s, dot, f = k.partition(".")
        if dot and s in SECTIONS:
            out.setdefault(s, {})[f] = v
        else:
            out[k] = v
    return out


def load_sweep(path: str | Path, quick: bool = False, seeds=None, overrides: dict | None = None,
               out: str | Path | None = None) -> Sweep:
    """Read a sweep file; `seeds`, `overrides` (--set) and `out` replace the file's values."""
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8-sig"))  # a BOM (Windows editors) is fine
    except FileNotFoundError:
        raise ConfigError(f"{p}: sweep file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{p}: is a folder; give a sweep TOML file") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: not UTF-8 text (byte {e.start}); save it as UTF-8 TOML") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: invalid TOML: {e}") from None
    extra = set(doc) - {"sweep", "base", "grid", "variants", "quick"}
    if extra:
        raise ConfigError(f"{p}: unknown table(s) {sorted(extra)}; a sweep file has [sweep], "
                          "[base], [grid], [[variants]] and [quick]")
    _check_shape(p, doc)
    meta = doc.get("sweep", {})
    bad = set(meta) - {"name", "out", "seeds", "keep"}
    if bad:
        raise ConfigError(f"{p}: unknown key(s) in [sweep]: {sorted(bad)} (name, out, seeds, "
                          "keep)")
    name = meta.get("name", p.stem)
    grid = {k: (v if isinstance(v, list) else [v]) for k, v in doc.get("grid", {}).items()}
    for k, v in [*grid.items(), *((k, v) for var in doc.get("variants", ())
                                  for k, v in var.items())]:
        if v == []:
            raise ConfigError(f"{p}: {k} = [] has no values; give at least one or remove it")
    variants = tuple(doc.get("variants", [{}])) or ({},)
    for src in (doc.get("base", {}), grid, *variants):
        if "seed" in src or ("train" in src and "seed" in src.get("train", {})):
            raise ConfigError(f"{p}: set training seeds with [sweep] seeds = [...], not 'seed'")
    raw = seeds if seeds is not None else meta.get("seeds", [1])
    raw = [raw] if isinstance(raw, int) else raw
    if not isinstance(raw, (list, tuple)) or not all(
            isinstance(s, int) and not isinstance(s, bool) for s in raw):
        raise ConfigError(f"{p}: [sweep] seeds must be a list of integers, e.g. seeds = [1, 2, 3]"
                          f", got {raw!r}")
    seeds = tuple(raw)
    if not seeds:
        raise ConfigError(f"{p}: no seeds")
    q = None
    if quick:
        q = {**QUICK, **doc.get("quick", {})}
        seeds = seeds[:1]
        grid = {k: v[:1] for k, v in grid.items()}
        variants = tuple({k: (v[:1] if isinstance(v, list) else v) for k, v in var.items()}
                         for var in variants)
    if out is not None and not str(out).strip():
        raise ConfigError("--out: empty; give the sweep's output folder")
    if overrides and "seed" in overrides:
        raise ConfigError("--set seed=...: set training seeds with --seeds (or [sweep] seeds)")
    out_dir = Path(out) if out is not None else Path(meta.get("out", f"sweeps/{name}"))
    if quick and out is None:
        out_dir = out_dir.with_name(out_dir.name + "-quick")
    return Sweep(name, out_dir, seeds, doc.get("base", {}), grid, variants,
                 _keep(p, meta.get("keep", [])), dict(overrides or {}), q)


def _check_shape(p: Path, doc: dict) -> None:
    """[sweep], [base], [grid] and [quick] are tables, [[variants]] an array of tables, and
    [sweep]'s name and out non-empty strings: anything else is refused naming the table."""
    for t in ("sweep", "base", "grid", "quick"):
        if t in doc and not isinstance(doc[t], dict):
            raise ConfigError(f"{p}: {t} must be a table ([{t}]), got {doc[t]!r}")
    v = doc.get("variants", [])
    if not isinstance(v, list) or not all(isinstance(x, dict) for x in v):
        raise ConfigError(f"{p}: variants must be an array of tables ([[variants]] blocks), "
                          f"got {v!r}")
    tables = [(t, doc[t]) for t in ("base", "quick") if t in doc] + [("variants", x) for x in v]
    for t, tab in tables:
        for k, x in tab.items():
            if k in SECTIONS and k not in FLAT and not isinstance(x, dict):
                raise ConfigError(f"{p}: [{t}] {k} must be a table of {k} settings "
                                  f"([{t}.{k}] or {k}.KEY = ...), got {x!r}")
    meta = doc.get("sweep", {})
    for k in ("name", "out"):
        if k in meta and not (isinstance(meta[k], str) and meta[k].strip()):
            raise ConfigError(f"{p}: [sweep] {k} must be a non-empty string, got {meta[k]!r}")


def _keep(p: Path, keep) -> tuple[str, ...]:
    """[sweep] keep: heavy run files (rundir.HEAVY) to keep; one name or a list of them."""
    names = [keep] if isinstance(keep, str) else keep
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"{p}: [sweep] keep must be a list of file names from {list(HEAVY)}, "
                          f"got {keep!r}")
    if bad := [n for n in names if n not in HEAVY]:
        raise ConfigError(f"{p}: [sweep] keep: {bad} are not heavy run files; choose from "
                          f"{list(HEAVY)}")
    return tuple(names)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    s = str(v)
    return Path(s).name if "/" in s else s


def _readable(point: dict, labels: dict) -> str:
    parts = []
    first = sorted(point, key=lambda k: (k != "preset", k == "data"))  # preset first, data last
    for k in first:
        v = point[k]
        if k == "data":
            parts.append(labels.get("dataset") or _fmt(v))
        elif _is_data_key(k):  # format, columns, ...: the dataset label or path says enough
            continue
        elif k in _SHORT:
            parts.append(f"{_SHORT[k]}{_fmt(v)}")
        else:
            parts.append(f"{k.split('.')[-1]}{_fmt(v)}")
    for k, lab in labels.items():  # bundles without a `data` key still show their label
        if lab not in parts:
            parts.append(lab)
    s = re.sub(r"[^A-Za-z0-9.+=-]+", "_", "_".join(p for p in parts if p)) or "run"
    return s[:60]


def _is_data_key(k: str) -> bool:
    return k == "data" or k.startswith("data.") or FLAT.get(k, ("",))[0] == "data"


def _identity(nested: dict) -> str:
    ident = {s: {k: v for k, v in kv.items() if (s, k) not in _NOT_IDENTITY}
             for s, kv in nested.items()}
    blob = json.dumps({s: kv for s, kv in ident.items() if kv}, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:8]


def flatten(cfg: dict) -> dict:
    """A nested config (Experiment.to_dict(), or a run's config.json) by flat names (data, model,
    sampler, loss, lr, pool_size, ..., method); sections or keys it lacks are left out."""
    out = {_INV_FLAT[(s, k)]: v for s in SECTIONS for k, v in cfg.get(s, {}).items()
           if (s, k) in _INV_FLAT}
    out["method"] = cfg.get("method")
    return out


def flat_config(exp: Experiment) -> dict:
    """Every config field of `exp` by its flat name (see flatten)."""
    return flatten(exp.to_dict())


def expand(sw: Sweep, origin: str = "sweep") -> list[RunSpec]:
    """Every (grid point, seed) as a RunSpec, in run order: by dataset, then seed, then point.

    Each experiment is built (validated) here, so a bad key fails before anything trains.
    """
    base = merge({}, _nest_dotted(sw.base), f"{origin} [base]")
    specs = []
    seen = set()
    for var in sw.variants:
        axes = {**sw.grid, **{k: (v if isinstance(v, list) else [v]) for k, v in var.items()}}
        keys = list(axes)
        for values in product(*(axes[k] for k in keys)):
            point, labels, data_bundles = {}, {}, set()
            for k, v in zip(keys, values):
                if isinstance(v, dict):  # a bundle of keys set together
                    bundle = dict(v)
                    if any(_is_data_key(b) for b in bundle):
                        data_bundles.add(k)
                    lab = bundle.pop("label", None)
                    labels[k] = str(lab) if lab is not None else _fmt(bundle.get("data", k))
                    point.update(bundle)
                else:
                    point[k] = v
            nested = merge(base, _nest_dotted(point), f"{origin} point {point}")
            if sw.quick is not None:  # the quick dataset replaces the data section whole
                nested["data"] = {}
                nested = merge(nested, _nest_dotted(sw.quick), f"{origin} [quick]")
                point = {k: v for k, v in point.items() if not _is_data_key(k)}
                labels = {k: v for k, v in labels.items() if k not in data_bundles}
            nested = merge(nested, _nest_dotted(sw.overrides), "--set")
            pid = _identity(nested)
            if pid in seen:  # two variants reaching the same experiment: run it once
                continue
            seen.add(pid)
            for seed in sw.seeds:
                nested_s = {**nested, "train": {**nested.get("train", {}), "seed": seed}}
                try:
                    exp = build(nested_s)
                except ConfigError as e:  # name the file and where in it the value came from
                    where = culprit(e, [
                        ("[base]", _nest_dotted(sw.base)),
                        ("grid point " + ", ".join(f"{k} = {v!r}" for k, v in point.items()),
                         _nest_dotted(point)),
                        ("[quick]", _nest_dotted(sw.quick) if sw.quick is not None else {}),
                        ("--set", _nest_dotted(sw.overrides))])
                    raise ConfigError(f"{origin}: {e} ({where})") from None
                specs.append(RunSpec(point, labels, pid, seed, exp,
                                     f"{_readable(point, labels)}-{pid}-s{seed}"))
    order = {}
    for s in specs:  # dataset in order of first appearance, so each dataset is loaded once
        order.setdefault(json.dumps(s.exp.to_dict()["data"], sort_keys=True), len(order))
    return sorted(specs, key=lambda s: (order[json.dumps(s.exp.to_dict()["data"],
                                                         sort_keys=True)], s.seed))


def filter_runs(specs: list[RunSpec], only: dict) -> list[RunSpec]:
    """Runs whose flat config (or labels, or `preset` = method, or data folder name) match:
    every key of `only`, each to one of its values (a tuple, from parse_only) or to its value."""
    def match(s: RunSpec, k: str, want) -> bool:
        flat = flat_config(s.exp)
        if k == "preset":
            k = "method"
        if k in s.labels:
            return str(s.labels[k]) == str(want)
        if k not in flat:
            raise ConfigError(f"--only: unknown key {k!r}")
        have = flat[k]
        if k == "data" and Path(str(have)).name == str(want):
            return True
        return have == want or str(have) == str(want)

    out = [s for s in specs
           if all(any(match(s, k, w) for w in only_values(v)) for k, v in only.items())]
    if only and not out:
        raise ConfigError(f"no runs match --only {describe_only(only)}; the same command with "
                          "--dry-run and without --only lists them")
    return out


def read_rows(path: Path, numbered: bool = False) -> list:
    """Rows of a results.jsonl ([] when absent); a torn last line (killed mid-write: no newline
    at its end) is skipped, any other line that is not a JSON object is an error naming it.
    numbered: (line number, row) pairs instead of rows."""
    return _parse_rows(path, path.read_bytes(), numbered) if path.exists() else []


def _parse_rows(path: Path, data: bytes, numbered: bool = False) -> list:
    """read_rows on the bytes `data` of `path`."""
    from .data import DataError

    lines = data.splitlines()
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line.decode("utf-8"))
        except ValueError as e:  # not UTF-8, or not JSON
            if n == len(lines) and not data.endswith(b"\n"):
                continue
            raise DataError(f"{path}:{n}: not a results row ({e}); repair or delete the line "
                            "(`softbpr sweep` adds the row of a finished run again)") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}:{n}: not a results row (a JSON object); repair or delete "
                            "the line (`softbpr sweep` adds the row of a finished run again)")
        rows.append((n, row) if numbered else row)
    return rows


def _own_rows(results: Path, log: Callable[[str], None]) -> list[dict]:
    """The rows of a sweep's results.jsonl, ready to append to. A file there that is not one (a
    user's own file in the --out folder) is refused rather than appended to. A last line
    without its newline would merge with the next row: a complete row gets its newline; a torn
    one (a write killed midway, skipped by read_rows) is cut off in place (its run's row is
    added again from the run directory)."""
    data = results.read_bytes() if results.exists() else b""
    rows = _parse_rows(results, data)
    if (not rows and data.strip()[:1] not in (b"", b"{")) or not all("run" in r for r in rows):
        raise ConfigError(f"{results}: not a softbpr results file (rows with a 'run' key); "
                          "give the sweep another --out")
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        try:
            json.loads(data[cut:].decode("utf-8"))
        except ValueError:
            os.truncate(results, cut)  # in place: a shard appending meanwhile keeps its row
            log(f"{results}: cut a torn last line (a write killed midway); its run's row is "
                "written again")
        else:
            with open(results, "ab") as fh:
                fh.write(b"\n")
    return rows


def results_path(sw: Sweep) -> Path:
    return sw.out / RESULTS


def run_dir(sw: Sweep, spec: RunSpec) -> RunDir:
    return RunDir(sw.out / "runs" / spec.name)


def status(sw: Sweep, spec: RunSpec) -> str:
    """done | failed | resumable | pending (RunDir.status)."""
    return run_dir(sw, spec).status()


def _row(sw: Sweep, spec: RunSpec, res: dict, epochs: int, state: str, error=None) -> dict:
    return {"study": sw.name, "run": f"runs/{spec.name}", "point_id": spec.point_id,
            "point": spec.point, "labels": spec.labels,
            "dataset": spec.dataset or res.get("dataset"), "method": spec.exp.method,
            "model": spec.exp.model.name, "seed": spec.seed, "config": flat_config(spec.exp),
            "best_epoch": res.get("best_epoch"), "valid": res.get("valid", {}),
            "test": res.get("test", {}), "seconds": res.get("seconds"), "epochs": epochs,
            "stop_reason": res.get("stop_reason"), "status": state, **({"error": error} if error else {})}


def run_sweep(sw: Sweep, specs: list[RunSpec], log: Callable[[str], None] = print,
              retry_failed: bool = False, verbose: bool = False,
              budget_minutes: float = 0.0,
              on_epoch: Callable[[RunSpec], Callable[[dict], None] | None] | None = None,
              row_extra: Callable[[RunSpec], dict] | None = None) -> list[dict]:
    """Train every pending run in order; returns the rows appended to results.jsonl now.

    on_epoch(spec): the `fit(on_epoch=...)` callback of that run (tune.py reports validation to
    Optuna and prunes through it); row_extra(spec): more keys for that run's row.

    budget_minutes > 0: a wall-clock budget for the whole call. No run starts with less than
    half a minute of it left (those stay pending, for a later call), and each run's training
    budget (train.time_limit) is capped at what is left when it starts (for a resumed run:
    plus the training time of its earlier sessions, which its time_limit counts as well).
    """
    import dataclasses

    from .split import load_split
    from .trainer import TrainingDiverged, fit

    (sw.out / "runs").mkdir(parents=True, exist_ok=True)
    results = results_path(sw)
    have = {r["run"] for r in _own_rows(results, log)}
    new: list[dict] = []
    cached = (None, None)  # (DataConfig, Split): consecutive runs on one dataset load it once
    t_call = time.perf_counter()
    extra: dict = {}

    def append(row: dict) -> None:
        row = {**row, **extra}
        with open(results, "a") as fh:
            fh.write(json.dumps(row) + "\n")
        have.add(row["run"])
        new.append(row)

    for n, spec in enumerate(specs, 1):
        rd = run_dir(sw, spec)
        tag = f"[{n}/{len(specs)}] {spec.name}"
        extra = row_extra(spec) if row_extra is not None else {}
        st = status(sw, spec)
        if st == "done" or (st == "failed" and not retry_failed):
            if f"runs/{spec.name}" not in have:  # killed between result.json and the row
                res = rd.read_result() if st == "done" else rd.read_failed()
                append(_row(sw, spec, res, rd.n_epochs(), "ok" if st == "done" else "diverged",
                            res.get("error")))
            if st == "done":
                rd.remove_heavy(sw.keep)
            log(f"{tag}: {st}, skipped")
            continue
        exp = spec.exp
        if budget_minutes:
            left = budget_minutes - (time.perf_counter() - t_call) / 60.0
            if left < 0.5:
                log(f"{tag}: sweep budget of {budget_minutes:g} min spent; left pending")
                continue
            if st == "resumable":  # time_limit counts the run's earlier sessions too
                left += rd.load_state().get("elapsed", 0.0) / 60.0
            if not exp.train.time_limit or exp.train.time_limit > left:
                exp = dataclasses.replace(exp, train=dataclasses.replace(exp.train,
                                                                         time_limit=left))
        if st == "failed":
            rd.clear_failed()
        if cached[0] != spec.exp.data:
            cached = (spec.exp.data, load_split(spec.exp.data, log if verbose else lambda m: None))
        rd.path.mkdir(parents=True, exist_ok=True)
        # sweep.json: what plots need beyond config.json (the point, its labels and id)
        rd.write_sweep_info({"study": sw.name, "point_id": spec.point_id, "point": spec.point,
                             "labels": spec.labels, "seed": spec.seed})
        if not verbose:  # a line now: a long run would otherwise be silent until it ends
            log(f"{tag}: " + ("resuming" if st == "resumable" else "training")
                + f" (per-epoch lines: --verbose, or {rd.path / 'history.jsonl'})")
        t0 = time.perf_counter()
        try:
            run = fit(exp, split=cached[1], out_dir=rd.path, progress=False, overwrite=True,
                      log=log if verbose else (lambda m: None), resume=st == "resumable",
                      **({"on_epoch": on_epoch(spec)} if on_epoch is not None else {}))
        except TrainingDiverged as e:
            res = {"error": str(e), "seconds": round(time.perf_counter() - t0, 3)}
            rd.write_failed(res)
            append(_row(sw, spec, res, rd.n_epochs(), "diverged", str(e)))
            rd.remove_heavy(sw.keep)
            log(f"{tag}: diverged ({e})")
            continue
        row = _row(sw, spec, run.result(), len(run.history), "ok")
        append(row)
        rd.remove_heavy(sw.keep)
        m = spec.exp.eval.metric
        k = max(spec.exp.eval.topk)
        log(f"{tag}: valid {m} {run.valid.get(m, float('nan')):.4f} | test recall@{k} "
            f"{run.test[f'recall@{k}']:.4f} ndcg@{k} {run.test[f'ndcg@{k}']:.4f} | best epoch "
            f"{run.best_epoch} | {run.seconds:.0f}s{' (resumed)' if st == 'resumable' else ''}")
    return new


def shard_command(file: str | Path, k: int, n: int, *, quick: bool = False, seeds=None,
                  overrides=(), only=(), out: str | Path | None = None, best: bool = False,
                  retry_failed: bool = False, verbose: bool = False,
                  budget_minutes: float = 0.0) -> list[str]:
    """The `python -m softbpr sweep ... --shard k/n` command line of one shard: the sweep given
    by the same options as `softbpr sweep` (overrides and only: "KEY=VALUE" strings as given to
    --set and --only; seeds: ints)."""
    cmd = [sys.executable, "-m", "softbpr", "sweep", str(file)]
    cmd += ["--quick"] if quick else []
    cmd += ["--seeds", ",".join(str(int(x)) for x in seeds)] if seeds is not None else []
    for a in overrides:
        cmd += ["--set", a]
    for a in only:
        cmd += ["--only", a]
    cmd += ["--out", str(out)] if out is not None else []
    cmd += ["--best"] if best else []
    cmd += ["--retry-failed"] if retry_failed else []
    cmd += ["--verbose"] if verbose else []
    cmd += ["--budget", repr(float(budget_minutes))] if budget_minutes else []
    return cmd + ["--shard", f"{k}/{n}"]


def run_processes(commands: list[list[str]], log: Callable[[str], None]) -> list[int]:
    """Run `commands` as subprocesses at once; each output line reaches `log` as "[job k] line"
    (k from 1, no newline). OMP_NUM_THREADS defaults to 1 in each: N processes with a thread per
    core each would oversubscribe the CPUs. Returns their exit codes. On Ctrl-C (or SIGTERM,
    which cli.main turns into it) every process is terminated and waited for, then the
    interrupt goes on: their runs keep their state.pt and resume on the next call. The one
    process relay of `sweep --jobs` and `tune --jobs`."""
    import os
    import subprocess
    import threading

    env = {**os.environ}
    env.setdefault("OMP_NUM_THREADS", "1")
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=env) for c in commands]

    def relay(k: int, p) -> None:
        for line in p.stdout:
            log(f"[job {k}] {line.rstrip()}")

    threads = [threading.Thread(target=relay, args=(k, p), daemon=True)
               for k, p in enumerate(procs, 1)]
    for t in threads:
        t.start()
    try:
        return [p.wait() for p in procs]
    except KeyboardInterrupt:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
        raise
    finally:
        for t in threads:
            t.join()


def run_jobs(file: str | Path, jobs: int, results: Path | None = None,
             log: Callable[[str], None] = lambda m: print(m, end="", flush=True),
             **options) -> int:
    """Run a sweep as `jobs` subprocesses at once, shard k/jobs each (e.g. several runs sharing
    one GPU); returns the exit code of the worst shard.

    `options` are those of `shard_command` (the sweep's --quick, --seeds, --set, ...). Each
    shard's output lines reach `log` prefixed with "[job k] " (see `run_processes`). The shards
    share results.jsonl, appending one line per run.
    """
    if jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    codes = run_processes([shard_command(file, k, jobs, **options) for k in range(1, jobs + 1)],
                          lambda m: log(m + "\n"))
    where = f"; results: {results}" if results is not None else ""
    log(f"{jobs} jobs finished (exit codes {codes}){where}\n")
    return max(codes, key=abs)


__all__ = [
    "QUICK",
    "RESULTS",
    "RunSpec",
    "Sweep",
    "describe_only",
    "expand",
    "filter_runs",
    "flat_config",
    "flatten",
    "load_sweep",
    "only_values",
    "parse_assignments",
    "parse_only",
    "parse_value",
    "read_rows",
    "results_path",
    "run_dir",
    "run_jobs",
    "run_processes",
    "run_sweep",
    "shard_command",
    "status",
]
