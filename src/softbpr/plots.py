"""The paper's figures, redrawn from run directories only (no retraining).

Inputs are run directories (config.json, history.jsonl, result.json, and sweep.json when a sweep
made them) found under the given paths. Figures (PNG):
  curves.png        validation metric vs epoch, one line per setting (Figures 3a-b, 4, 6)
  vs-H.png          test metric vs pool size H at the validation-best epoch (Figure 5)
  vs-alpha.png      test metric vs α (Figure 3c-d)
  diagnostics.png   per epoch: share of chosen negatives that are held-out positives / planted
                    preferences, score gap ŷ_ui − ŷ_uj, mean Δ, Δ quantiles q10-q50-q90
  delta-hist.png    the Δ histogram of one epoch per setting
Panels: one column per dataset. A "setting" is the runs that differ only in their seed: its line
is the mean over seeds, with a band from the lowest to the highest seed where there are several.
Lines are named by the config keys that vary between settings (method, H, α, ...).
matplotlib is an optional extra: pip install 'softbpr[plots]'.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

from .config import label
from .rundir import CONFIG, HISTORY, RESULT, find_runs

_IGNORE = {"seed", "device", "checkpoint_every", "batch_users", "data", "format", "columns",
           "split", "data_seed", "kcore", "valid_ratio", "test_ratio",
           "time_limit"}  # a budget (capped per run by sweep --budget), not a setting to compare
DIAGNOSTICS = [("neg_heldout_rate", "negatives that are held-out positives"),
               ("neg_truth_rate", "negatives that are planted preferences"),
               ("score_gap", "score gap ŷ_ui − ŷ_uj"),
               ("grad_weight", "mean Δ = 1 − σ((1−α)(ŷ_ui − ŷ_uj))"),
               ("delta_q50", "Δ median (band: q10–q90)")]


def require_matplotlib() -> None:
    """Raise ModuleNotFoundError with the install command when matplotlib is missing."""
    try:
        import matplotlib.figure  # noqa: F401
    except ModuleNotFoundError:
        raise ModuleNotFoundError("softbpr plot needs matplotlib: pip install 'softbpr[plots]' "
                                  "(or pip install matplotlib)") from None


# samplers whose negatives are synthetic (no item ids): the trainer cannot tell whether they are
# held-out positives, so these rates are not measured for them (history.jsonl says 0)
_UNMEASURED = {"mixgcf": ("neg_heldout_rate", "neg_truth_rate")}


def _figure(nrows: int, ncols: int):
    """A matplotlib Figure (object API: no pyplot, no global backend change)."""
    require_matplotlib()
    from matplotlib.figure import Figure

    # narrow figures (<= 2 panel columns) get their legend on the right: room for it
    fig = Figure(figsize=(4.2 * ncols + (2.6 if ncols <= 2 else 0), 3.2 * nrows),
                 layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


@dataclass
class RunData:
    dir: Path
    config: dict
    """Flat config (lr, pool_size, alpha, method, ...)."""
    history: list
    result: dict | None
    dataset: str
    seed: int
    point_id: str

    def as_row(self) -> dict:
        """The shape of a results.jsonl row, for report.select."""
        r = self.result or {}
        return {"run": str(self.dir), "method": self.config.get("method"),
                "model": self.config.get("model"), "dataset": self.dataset, "seed": self.seed,
                "config": self.config, "point_id": self.point_id, "valid": r.get("valid", {}),
                "test": r.get("test", {}), "stop_reason": r.get("stop_reason")}


def load_runs(paths) -> list[RunData]:
    """Every run directory (rundir.find_runs) under `paths`."""
    from .report import point_of
    from .sweep import flatten

    runs = []
    for rd in find_runs(paths):
        flat = flatten(rd.read_config())
        history = rd.read_history()
        _check_history(rd.history_path, history)
        res = rd.read_result()
        sw = rd.read_sweep_info() or {}
        ds = (sw.get("labels", {}).get("dataset") or (res or {}).get("dataset")
              or Path(str(flat.get("data"))).name)
        pid = point_of({"point_id": sw.get("point_id"), "config": flat})
        runs.append(RunData(rd.path, flat, history, res, str(ds),
                            int(flat.get("seed", 0)), pid))
    if not runs:
        raise FileNotFoundError(f"no run directories ({CONFIG} + {HISTORY}) under {paths}")
    return runs


_NUMBERS = ("loss", *(k for k, _ in DIAGNOSTICS), "delta_q10", "delta_q90")


def _check_history(path: Path, rows: list) -> None:
    """Each row has the shape the figures read (else a DataError naming file:line)."""
    from .data import DataError
    from .report import is_number

    for n, row in enumerate(rows, 1):
        if not isinstance(row, dict) or not isinstance(row.get("epoch"), int):
            problem = "not an epoch row (an object with an integer epoch)"
        elif not isinstance(row.get("valid", {}), dict) or not all(
                map(is_number, row.get("valid", {}).values())):
            problem = ('"valid" is not an object of metric: number '
                       f'({json.dumps(row["valid"])[:60]})')
        elif bad := [k for k in _NUMBERS if row.get(k) is not None and not is_number(row[k])]:
            problem = f'"{bad[0]}" is not a number'
        elif not isinstance(row.get("delta_hist", []), list) or not all(
                map(is_number, row.get("delta_hist", []))):
            problem = '"delta_hist" is not a list of numbers'
        else:
            continue
        raise DataError(f"{path}:{n}: damaged history row: {problem}; repair or delete the line")


def best_only(runs: list[RunData], metric: str | None = None) -> list[RunData]:
    """The runs of the grid point chosen on validation per method and dataset (report.select)."""
    from .report import select

    done = [r for r in runs if r.result]
    chosen = {c.point_id for c in select([r.as_row() for r in done], metric).values()}
    return [r for r in runs if r.point_id in chosen]


def label_keys(runs: list[RunData], exclude=()) -> list[str]:
    """Config keys that vary between runs (seed and data keys aside); a key that is a function
    of `method` (sampler, loss, α of BPR rows, ...) is dropped when method varies."""
    keys = []
    for k in sorted({k for r in runs for k in r.config} - _IGNORE - set(exclude)):
        if len({json.dumps(r.config.get(k), sort_keys=True) for r in runs}) > 1:
            keys.append(k)
    if "method" in keys:
        by_method: dict = {}
        for r in runs:
            by_method.setdefault(r.config["method"], []).append(r)
        keys = ["method"] + [k for k in keys if k != "method" and any(
            len({json.dumps(r.config.get(k)) for r in rs}) > 1 for rs in by_method.values())]
    return keys


def _per_method(runs: list[RunData], keys: list[str]) -> dict:
    """method -> the label keys that vary among that method's runs (method itself kept): RNS
    is not labelled with an H it does not use just because DNS varies H."""
    if "method" not in keys:
        return {}
    by: dict = {}
    for r in runs:
        by.setdefault(r.config.get("method"), []).append(r)
    return {m: ["method"] + [k for k in keys[1:]
                             if len({json.dumps(r.config.get(k)) for r in rs}) > 1]
            for m, rs in by.items()}


def setting_label(run: RunData, keys: list[str], per_method: dict | None = None) -> str:
    from .report import DISPLAY

    parts = []
    for k in (per_method or {}).get(run.config.get("method"), keys):
        v = run.config.get(k)
        if k == "method":
            parts.append(DISPLAY.get(v, str(v)))
        else:
            parts.append(f"{label(k)}={v:g}" if isinstance(v, float) else f"{label(k)}={v}")
    m = run.config.get("method")
    return " ".join(parts) or DISPLAY.get(m, m or "run")


def _settings(runs: list[RunData], keys: list[str]) -> dict:
    """{dataset: {label: [runs]}} in first-appearance order."""
    out: dict = {}
    pm = _per_method(runs, keys)
    for r in runs:
        out.setdefault(r.dataset, {}).setdefault(setting_label(r, keys, pm), []).append(r)
    return out


def _series(runs: list[RunData], get) -> tuple[list, list, list, list]:
    """x, mean, low, high over seeds of get(row) per epoch (rows where it is not None)."""
    per: dict = {}
    for r in runs:
        for row in r.history:
            v = get(row)
            if v is not None:
                per.setdefault(row["epoch"], []).append(v)
    xs = sorted(per)
    return (xs, [statistics.fmean(per[x]) for x in xs], [min(per[x]) for x in xs],
            [max(per[x]) for x in xs])


def _panels(runs: list[RunData], keys: list[str], nrows: int):
    """Runs grouped by dataset and label, one colour per label, and a figure with `nrows` rows
    of one panel per dataset: (sets, colors, fig, axes)."""
    sets = _settings(runs, keys)
    colors = _colors(list(dict.fromkeys(lab for d in sets.values() for lab in d)))
    fig, axes = _figure(nrows, len(sets))
    return sets, colors, fig, axes


def _colors(labels: list[str]) -> dict:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(labels) <= 10 else "tab20"]
    return {lab: cmap(i % cmap.N) for i, lab in enumerate(labels)}


def _epoch_axis(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _line(ax, xs, mean, lo, hi, color, label, band=True):
    ax.plot(xs, mean, color=color, label=label, lw=1.6)
    if band and any(a != b for a, b in zip(lo, hi)):
        ax.fill_between(xs, lo, hi, color=color, alpha=0.18, lw=0)


def _finish(fig, axes, path: Path, title: str) -> Path:
    handles, labels = axes[0][0].get_legend_handles_labels()
    for row in axes:
        for ax in row:
            h, lab = ax.get_legend_handles_labels()
            for a, b in zip(h, lab):
                if b not in labels:
                    handles.append(a)
                    labels.append(b)
    if handles:  # beside narrow figures, below wide ones (never clipped)
        wide = len(axes[0]) > 2
        fig.legend(handles, labels, loc="outside lower center" if wide else "outside right center",
                   ncols=min(len(labels), 2 * len(axes[0])) if wide else 1, fontsize="small",
                   frameon=False)
    fig.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def _pretty(m: str) -> str:
    name, _, k = m.partition("@")
    return f"{'Recall' if name == 'recall' else 'NDCG'}@{k}" if k else m


def plot_curves(runs: list[RunData], path: Path, metrics=("recall@50", "ndcg@50")) -> Path:
    """Validation metric vs epoch, panels metric × dataset (Figures 3a-b, 4, 6)."""
    keys = label_keys(runs)
    sets, colors, fig, axes = _panels(runs, keys, len(metrics))
    for j, (ds, by) in enumerate(sets.items()):
        for i, m in enumerate(metrics):
            ax = axes[i][j]
            for lab, rs in by.items():
                xs, mean, lo, hi = _series(rs, lambda row, m=m: row.get("valid", {}).get(m))
                if xs:
                    _line(ax, xs, mean, lo, hi, colors[lab], lab)
            ax.set_title(f"{ds}", fontsize="medium")
            _epoch_axis(ax)
            ax.set_ylabel(f"valid {_pretty(m)}")
            ax.grid(alpha=0.3)
    model = "/".join(sorted({r.config.get("model", "?") for r in runs}))
    return _finish(fig, axes, path, f"Validation curves ({model})")


def plot_vs(runs: list[RunData], key: str, path: Path, metrics=("recall@50", "ndcg@50"),
            which: str = "test") -> Path:
    """`which` metric at the validation-best epoch vs config `key` (pool_size: Figure 5;
    alpha: Figure 3c-d); mean ± std over seeds, one line per remaining setting."""
    runs = [r for r in runs if r.result]
    if not runs:
        raise ValueError(f"no finished runs ({RESULT}) to plot against {key}")
    keys = [k for k in label_keys(runs, exclude=(key,))]
    sets, colors, fig, axes = _panels(runs, keys, len(metrics))
    for j, (ds, by) in enumerate(sets.items()):
        for i, m in enumerate(metrics):
            ax = axes[i][j]
            multi = any(len({r.config.get(key) for r in rs}) > 1 for rs in by.values())
            for lab, rs in by.items():
                per: dict = {}
                for r in rs:
                    per.setdefault(r.config.get(key), []).append(r.result[which][m])
                xs = sorted(per)
                ys = [statistics.fmean(per[x]) for x in xs]
                err = [statistics.stdev(per[x]) if len(per[x]) > 1 else 0.0 for x in xs]
                if len(xs) == 1 and multi:
                    # a setting that does not use the key (RNS for H): a reference level
                    ax.axhline(ys[0], color=colors[lab], ls="--", lw=1.2, label=lab)
                    continue
                ax.errorbar(xs, ys, yerr=err, color=colors[lab], label=lab, marker="o",
                            ms=4, capsize=3, lw=1.6)
            if key == "pool_size":
                ticks = sorted({r.config[key] for rs in by.values() for r in rs
                                if len({q.config.get(key) for q in rs}) > 1 or not multi})
                ax.set_xscale("log", base=2)
                ax.set_xticks(ticks, labels=[str(v) for v in ticks])
            ax.set_title(ds, fontsize="medium")
            ax.set_xlabel(label(key))
            ax.set_ylabel(f"{which} {_pretty(m)}")
            ax.grid(alpha=0.3)
    return _finish(fig, axes, path, f"{which.capitalize()} metric vs {label(key)} "
                   "(at the validation-best epoch)")


def plot_diagnostics(runs: list[RunData], path: Path) -> Path:
    """Per-epoch false-negative and gradient-weight diagnostics, panels diagnostic × dataset."""
    present = [(k, t) for k, t in DIAGNOSTICS if any(k in row for r in runs for row in r.history)]
    if not present:
        r = next((r for r in runs if not r.history), runs[0])  # an empty one, if any
        where = f"{r.dir / HISTORY}" + (f" (and {len(runs) - 1} more runs)" if len(runs) > 1
                                        else "")
        raise ValueError(f"{where}: empty, no epoch finished yet; wait for one, or plot other "
                         "runs" if not r.history else f"{where}: no diagnostics (trained before "
                         "they existed?); plot --kind curves")
    keys = label_keys(runs)
    sets, colors, fig, axes = _panels(runs, keys, len(present))
    for j, (ds, by) in enumerate(sets.items()):
        for i, (k, title) in enumerate(present):
            ax = axes[i][j]
            for lab, rs in by.items():
                rs = [r for r in rs if k not in _UNMEASURED.get(r.config.get("sampler"), ())]
                xs, mean, lo, hi = _series(rs, lambda row, k=k: row.get(k))
                if not xs:
                    continue
                if k == "delta_q50":  # band = mean q10 .. mean q90 instead of the seed range
                    _, _, q10, _ = _series(rs, lambda row: row.get("delta_q10"))
                    _, _, _, q90 = _series(rs, lambda row: row.get("delta_q90"))
                    ax.plot(xs, mean, color=colors[lab], label=lab, lw=1.6)
                    if len(q10) == len(xs) == len(q90):
                        ax.fill_between(xs, q10, q90, color=colors[lab], alpha=0.15, lw=0)
                else:
                    _line(ax, xs, mean, lo, hi, colors[lab], lab)
            ax.set_title(f"{ds}: {title}", fontsize="small")
            _epoch_axis(ax)
            ax.grid(alpha=0.3)
    return _finish(fig, axes, path, "False-negative and gradient-weight diagnostics")


def plot_delta_hist(runs: list[RunData], path: Path, epoch: int | None = None) -> Path:
    """Share of triplets per Δ bin in one epoch (default: each run's last), summed over seeds."""
    runs = [r for r in runs if any("delta_hist" in row for row in r.history)]
    if not runs:
        raise ValueError(f"the runs' {HISTORY} has no delta_hist (trained before it existed?)")
    keys = label_keys(runs)
    sets, colors, fig, axes = _panels(runs, keys, 1)
    for j, (ds, by) in enumerate(sets.items()):
        ax = axes[0][j]
        for lab, rs in by.items():
            total, eps = None, set()
            for r in rs:
                rows = [row for row in r.history if "delta_hist" in row
                        and (epoch is None or row["epoch"] == epoch)]
                if not rows:
                    continue
                eps.add(rows[-1]["epoch"])
                h = rows[-1]["delta_hist"]
                total = h if total is None else [a + b for a, b in zip(total, h)]
            if total is None or not sum(total):
                continue
            n, s = len(total), sum(total)
            edges = [k / n for k in range(n + 1)]
            ax.stairs([c / s for c in total], edges, color=colors[lab], lw=1.6,
                      label=f"{lab} (epoch {'/'.join(map(str, sorted(eps)))})")
        ax.set_title(ds, fontsize="medium")
        ax.set_xlabel("Δ = 1 − σ((1−α)(ŷ_ui − ŷ_uj))")
        ax.set_ylabel("share of triplets")
        ax.set_xlim(0, 1)
        ax.grid(alpha=0.3)
    return _finish(fig, axes, path, "Gradient weight Δ per triplet"
                   + (f", epoch {epoch}" if epoch is not None else ", last epoch"))


def _varies_within_method(runs: list[RunData], key: str) -> bool:
    by: dict = {}
    for r in runs:
        by.setdefault((r.config.get("method"), r.dataset), set()).add(r.config.get(key))
    return any(len(v) > 1 for v in by.values())


def _matches(r: RunData, only: dict) -> bool:
    """Every key of `only` matches one of its values (sweep.only_values)."""
    from .sweep import only_values

    for k, v in only.items():
        have = r.dataset if k == "dataset" else r.config.get("method" if k == "preset" else k)
        if not any(str(have) == str(w) or (k == "data" and r.dataset == str(w))
                   for w in only_values(v)):
            return False
    return True


def _spans(xs: list[int]) -> str:
    """[1, 2, 3, 5] -> '1-3, 5'."""
    out: list = []
    for x in xs:
        if out and x == out[-1][1] + 1:
            out[-1][1] = x
        else:
            out.append([x, x])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in out)


KINDS = ("all", "curves", "vs-H", "vs-alpha", "diagnostics", "delta-hist")


def plot_all(paths, out: str | Path | None = None, kinds=("all",), metrics=None,
             epoch: int | None = None, best: bool | None = None, only: dict | None = None,
             max_lines: int = 12, log=print) -> list[Path]:
    """Draw the requested figures (`all`: every one the runs support) into `out`.

    only: keep runs whose flat config matches ({"model": "ngcf"}; `dataset`/`data` match the
    dataset label, `preset` the method)."""
    require_matplotlib()  # before reading any run
    bad = set(kinds) - set(KINDS)
    if bad:
        raise ValueError(f"unknown plot kind(s) {sorted(bad)}; choose from {', '.join(KINDS)}")
    runs = [r for r in load_runs(paths) if _matches(r, only or {})]
    if not runs:
        from .sweep import describe_only

        raise ValueError(f"no runs under {paths} match {describe_only(only or {})}")
    first = Path(paths if isinstance(paths, (str, Path)) else paths[0])
    out = Path(out) if out else (first if first.is_dir() else first.parent) / "plots"
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} is a file; give --out a folder for the figures")
    if epoch is not None:
        have = sorted({row["epoch"] for r in runs for row in r.history if "delta_hist" in row})
        if epoch not in have:
            raise ValueError(f"--epoch {epoch}: no run has a Δ histogram of that epoch; "
                             + (f"choose among epochs {_spans(have)}" if have else
                                "these runs have none (trained before it existed?)"))
    if metrics is None:
        k = max(runs[0].config.get("topk") or [50])
        metrics = (f"recall@{k}", f"ndcg@{k}")
    kinds = set(kinds)
    every = "all" in kinds
    files = []
    if every or "vs-H" in kinds or "vs-alpha" in kinds:
        for kind, key in (("vs-H", "pool_size"), ("vs-alpha", "alpha")):
            if kind in kinds or (every and _varies_within_method(runs, key)
                                 and any(r.result for r in runs)):
                files.append(plot_vs(runs, key, out / f"{kind}.png", metrics))
    lines = max(len(v) for v in _settings(runs, label_keys(runs)).values())
    if best or (best is None and lines > max_lines):
        if best is None:
            log(f"{lines} settings per panel: drawing curves for the validation-chosen point "
                "per method and dataset only (as --best)")
        runs = best_only(runs)
    if every or "curves" in kinds:
        files.append(plot_curves(runs, out / "curves.png", metrics))
    if every or "diagnostics" in kinds:
        files.append(plot_diagnostics(runs, out / "diagnostics.png"))
    if "delta-hist" in kinds or (every and any("delta_hist" in r.history[-1]
                                               for r in runs if r.history)):
        name = f"delta-hist-e{epoch}.png" if epoch is not None else "delta-hist.png"
        files.append(plot_delta_hist(runs, out / name, epoch))
    return files


__all__ = [
    "RunData",
    "best_only",
    "load_runs",
    "plot_all",
    "plot_curves",
    "plot_delta_hist",
    "plot_diagnostics",
    "plot_vs",
]
