"""Replay `softbpr tune` on an exhaustive grid's validation curves, for other pruner settings.

    python bench/tune_replay.py configs/tune-tmall.toml sweeps/tune-tmall-grid \
        --pruner halving --min-epochs 4

A pruning decision depends only on the validation curves, and a run with the same config and
seed trains the same on the same machine, so a tuning can be replayed from the grid's runs
without training: the same Optuna sampler (the same grid order) and pruner are fed each trial's
recorded curve (best validation metric so far at each evaluated epoch) until it is pruned. The
replay reports, per study, the epochs the tuning would have trained, the trials it would have
pruned, and the point it would have chosen, against the grid's own epochs and choice. Check it
first against a real tuning with the same settings (its epochs and choices must match), then
read other settings as what they would have done on these curves (not as new measurements).
A replay can match only a tuning that ran uninterrupted with `--jobs 1` and proposed no point
twice: a resumed trial, a copied proposal or another worker order changes the trial numbers,
and with them hyperband's bracket of each trial.

Where the grid folder also holds other seeds of a replayed choice and of the grid's own choice
(`softbpr sweep FILE --out GRID --seeds 2,3 --only ...`), the last columns compare their valid
metric over the seeds both have: the two means and a paired two-sided t-test.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from softbpr.report import load_results, paired_test
from softbpr.rundir import RunDir
from softbpr.sweep import expand, load_sweep
from softbpr.tune import PRUNERS, TuneOptions, budget_attrs, groups, make_pruner, make_sampler


def replay(file: str, grid: str, opts: TuneOptions) -> list[dict]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sw = load_sweep(file, out=grid)
    seed = opts.seed if opts.seed is not None else sw.seeds[0]
    results = load_results(grid)
    out = []
    for g in groups(expand(sw), seed):
        metric = g.specs[0].exp.eval.metric
        # the real tuning's study name: hyperband's bracket of a trial is a hash of it
        study = optuna.create_study(study_name=f"{sw.name}/{g.name}", direction="maximize",
                                    sampler=make_sampler(opts, g),
                                    pruner=make_pruner(opts, g.eval_every, g.epochs))
        n = budget_attrs(opts, g, sw, seed)["trials"]
        used = 0
        pruned = []
        hists = {s.name: RunDir(sw.out / "runs" / s.name).read_history() for s in g.specs}
        grid_epochs = sum(len(h) for h in hists.values())
        for _ in range(n):
            trial = study.ask()
            params = {k: trial.suggest_categorical(k, v) for k, v in g.space.items()}
            spec = g.lookup(params)
            hist = hists[spec.name]
            if not hist:
                raise FileNotFoundError(f"{sw.out / 'runs' / spec.name}: no history (run the "
                                        "grid first)")
            best, stop = -math.inf, None
            for row in hist:
                if "valid" in row and metric in row["valid"]:
                    best = max(best, row["valid"][metric])
                    trial.report(best, row["epoch"])
                    if trial.should_prune():
                        stop = row["epoch"]
                        break
            if stop is not None:
                used += stop
                pruned.append(spec.name)
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            else:
                used += len(hist)
                study.tell(trial, best)
        best = study.best_trial
        grid_best = max(hists, key=lambda name: max(
            (r["valid"][metric] for r in hists[name] if metric in r.get("valid", {})),
            default=-math.inf))
        out.append({"study": g.name, "trials": n, "pruned": len(pruned), "epochs": used,
                    "grid_epochs": grid_epochs, "choice": best.params, "valid": best.value,
                    "seeds": over_seeds(results, metric, g.lookup(best.params).name,
                                        grid_best)})
    return out


def over_seeds(rows: list[dict], metric: str, choice: str, grid_choice: str) -> str:
    """'mean vs grid's mean (p, n)' of valid `metric` over the seeds that the grid folder's
    result rows hold for both runs' points (run names: the seed-1 run directories); '' with
    fewer than 2."""
    point = {Path(r["run"]).name: r["point_id"] for r in rows}
    vals = [{r["seed"]: r["valid"][metric] for r in rows if r["point_id"] == point.get(run)}
            for run in (choice, grid_choice)]
    p, n = paired_test(*vals)
    if n < 2:
        return ""
    seeds = sorted(set(vals[0]) & set(vals[1]))
    m = [sum(v[s] for s in seeds) / n for v in vals]
    return f"{m[0]:.4f} vs {m[1]:.4f} (p={'n/a' if p is None else f'{p:.2g}'}, n={n})"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("file", help="the sweep file")
    p.add_argument("grid", help="the exhaustive grid's sweep folder (its runs' history.jsonl)")
    p.add_argument("--pruner", default="halving", choices=PRUNERS)
    p.add_argument("--min-epochs", type=int, default=0)
    p.add_argument("--startup-trials", type=int, default=5)
    p.add_argument("--reduction-factor", type=int, default=3)
    p.add_argument("--sampler-seed", type=int, default=0)
    a = p.parse_args(argv)
    opts = TuneOptions("grid", a.pruner, 0, None, a.min_epochs, a.startup_trials,
                       a.reduction_factor, a.sampler_seed)
    rows = replay(a.file, a.grid, opts)
    print("| study | trials (pruned) | epochs | grid epochs | ratio | choice | valid | "
          "over seeds: choice vs grid's |")
    print("|---|---:|---:|---:|---:|---|---:|---|")
    for r in rows:
        print(f"| {r['study']} | {r['trials']} ({r['pruned']}) | {r['epochs']} | "
              f"{r['grid_epochs']} | {r['epochs'] / r['grid_epochs']:.2f} | "
              f"{' '.join(f'{k}={v}' for k, v in r['choice'].items())} | {r['valid']:.4f} | "
              f"{r['seeds']} |")
    e, ge = sum(r["epochs"] for r in rows), sum(r["grid_epochs"] for r in rows)
    print(f"\nall: {e} of the grid's {ge} epochs ({e / ge:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
