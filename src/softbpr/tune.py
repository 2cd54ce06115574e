"""Pruned tuning on Optuna: `softbpr tune SWEEP.toml`.

A sweep file's grid is searched per (dataset, model, method), one Optuna study each, so every
method gets the same trial budget and the same per-trial epoch cap (both recorded in the study's
user attrs, in every result row and in tune.json):

- **Search space.** The grid points of a study (on one training seed) are Optuna's search space:
  one categorical parameter per point key that varies within the study (lr, reg, pool_size,
  alpha, ...). `--sampler grid` (default) is Optuna's GridSampler: every point once, in a
  seeded random order, until `--trials` (default: all of them). `--sampler tpe|random` is a
  budgeted search over the same points (`--trials N`); a point it proposes twice is not trained
  twice (the trial copies the earlier result and does not count towards the budget).
- **Pruning.** At each validation epoch the trial reports its best validation `eval.metric` so
  far (what its result would be if it stopped now) at step = epoch; `--pruner median`
  (MedianPruner) or `halving` (SuccessiveHalvingPruner) decide from these reports, and a pruned
  trial stops through `trainer.StopRun("pruned")`: it restores its best weights, is tested and
  writes result.json with `stop_reason = "pruned"`. No trial is pruned before `--min-epochs`.
- **Runs and rows.** A trial is the sweep's run of that point and seed, trained by
  `sweep.run_sweep` itself: the same run directory (`<out>/runs/<name>`) and the same
  results.jsonl row, plus a `tune` entry (study, trial, sampler, pruner, budget). `report`,
  `plot` and `sweep --best` read them unchanged. Selection stays on validation: report chooses
  among the trials that were not pruned (a pruned trial was behind when it stopped, and had
  fewer epochs than the others) and lists how many points were pruned.
- **Resuming.** The studies live in `<out>/tune.db` (SQLite). Rerun the same command: finished
  trials are kept, the trial that was running when the process was killed is asked again with
  the same point, and its run resumes from its state.pt. `--jobs N` runs N worker processes on
  the same studies (OMP_NUM_THREADS=1 each unless set). One tune command at a time per folder
  (`tune.lock`).

Seeds: trials train on one seed (`--seed`, default the sweep's first). Add seeds to the chosen
points afterwards with `softbpr sweep FILE --best --seeds 1,2,3,4,5` (same --out and --set).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .config import ConfigError
from .rundir import RunDir, write_json
from .sweep import RunSpec, Sweep, run_processes, run_sweep

SAMPLERS = ("grid", "tpe", "random")
PRUNERS = ("median", "halving", "hyperband", "none")
DB = "tune.db"
LOCK = "tune.lock"
SUMMARY = "tune.json"
_PRIMITIVE = (str, int, float, bool, type(None))
_MAX_DUPLICATES = 50


def require_optuna():
    """The optuna module, or a ConfigError saying how to install it."""
    try:
        import optuna
    except ModuleNotFoundError:
        raise ConfigError("softbpr tune needs Optuna, which is not installed: "
                          "pip install 'softbpr[tune]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


@dataclass(frozen=True)
class TuneOptions:
    sampler: str = "grid"
    """grid (every point, Optuna's GridSampler) | tpe | random (budgeted: --trials)."""
    pruner: str = "median"
    """median (MedianPruner) | halving (SuccessiveHalvingPruner) | hyperband (HyperbandPruner:
    several successive-halving brackets with later first rungs, so a slow learner survives in
    some of them) | none."""
    trials: int = 0
    """Trials per study (per dataset and method); 0 = the number of grid points."""
    seed: int | None = None
    """Training seed of every trial; None = the sweep's first seed."""
    min_epochs: int = 0
    """No trial is pruned before this epoch (median: n_warmup_steps; halving: min_resource,
    the first rung; 0 = halving's first rung at the first evaluation)."""
    startup_trials: int = 5
    """median: trials that finish before any is pruned (Optuna's n_startup_trials)."""
    reduction_factor: int = 3
    """halving, hyperband: 1 of every `reduction_factor` trials goes on at each rung."""
    sampler_seed: int = 0
    """Seed of the sampler (the grid's order, TPE's draws)."""

    def check(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"--sampler must be one of {', '.join(SAMPLERS)}, got "
                              f"{self.sampler!r}")
        if self.pruner not in PRUNERS:
            raise ConfigError(f"--pruner must be one of {', '.join(PRUNERS)}, got "
                              f"{self.pruner!r}")
        for k in ("trials", "min_epochs", "startup_trials"):
            if getattr(self, k) < 0:
                raise ConfigError(f"--{k.replace('_', '-')} must be >= 0, got "
                                  f"{getattr(self, k)}")
        if self.reduction_factor < 2:
            raise ConfigError(f"--reduction-factor must be >= 2, got {self.reduction_factor}")


# ----------------------------------------------------------------------------------------------
# Studies: the grid points of one (dataset, model, method) as a search space


def _enc(v):
    """A grid value as an Optuna categorical choice (lists, tables: their JSON text)."""
    return v if isinstance(v, _PRIMITIVE) else json.dumps(v, sort_keys=True)


def _key(v) -> str:
    return json.dumps(v, sort_keys=True)  # tells 1 from 1.0 from True


_MISSING = "(unset)"


@dataclass
class Group:
    """One study: the grid points of a (dataset, model, method) on the tuning seed."""

    dataset: str
    model: str
    method: str
    specs: list[RunSpec]
    space: dict
    """Optuna parameter name -> its choices."""
    params: dict
    """point_id -> that point's parameters."""
    epochs: int
    """The largest `train.epochs` of the points: each trial's epoch cap."""

    @property
    def name(self) -> str:
        return f"{self.dataset}/{self.model}/{self.method}"

    @property
    def eval_every(self) -> int:
        """The most frequent validation of the points: the steps a trial reports at."""
        return min(s.exp.train.eval_every for s in self.specs)

    def lookup(self, params: dict) -> RunSpec:
        want = {k: _key(v) for k, v in params.items()}
        for s in self.specs:
            if {k: _key(v) for k, v in self.params[s.point_id].items()} == want:
                return s
        raise KeyError(f"study {self.name}: no grid point has {params}")

    def fingerprint(self) -> str:
        return hashlib.sha1(" ".join(sorted(self.params)).encode()).hexdigest()[:12]


def groups(specs: list[RunSpec], seed: int) -> list[Group]:
    """The studies of a sweep's runs: one per (dataset, model, method), on training seed `seed`.

    A study's parameters are the point keys whose values vary within it. When its points are not
    the full product of those values (variants of one method with different keys), it has one
    parameter `point` instead, whose choices are the run names."""
    by: dict = {}
    for s in specs:
        if s.seed != seed:
            continue
        ds = s.dataset or Path(str(s.exp.data.data)).name
        by.setdefault((ds, s.exp.model.name, s.exp.method), []).append(s)
    out = []
    for (ds, model, method), ss in by.items():
        keys = list(dict.fromkeys(k for s in ss for k in s.point))
        values = {k: list(dict.fromkeys(_key(s.point.get(k, _MISSING)) for s in ss)) for k in keys}
        vary = [k for k in keys if len(values[k]) > 1]
        if math.prod(len(values[k]) for k in vary) == len(ss):
            params = {s.point_id: {k: _enc(s.point.get(k, _MISSING)) for k in vary} for s in ss}
            space = {k: list({_key(p[k]): p[k] for p in params.values()}.values())
                     for k in vary}
        else:
            params = {s.point_id: {"point": s.name.rsplit("-s", 1)[0]} for s in ss}
            space = {"point": [p["point"] for p in params.values()]}
        out.append(Group(ds, model, method, ss, space, params,
                         max(s.exp.train.epochs for s in ss)))
    return out


# ----------------------------------------------------------------------------------------------
# Optuna objects


def storage(out: Path):
    """The RDB storage of `<out>/tune.db` (SQLite; waits up to a minute for a busy database)."""
    optuna = require_optuna()
    from sqlalchemy import event

    out.mkdir(parents=True, exist_ok=True)
    st = optuna.storages.RDBStorage(f"sqlite:///{(out / DB).resolve()}",
                                    engine_kwargs={"connect_args": {"timeout": 60}})

    def wal(conn, _record) -> None:
        # write-ahead log: readers do not block the writer (--jobs), and a commit (one per
        # reported epoch) need not wait for a full fsync; a killed process loses nothing
        # committed (only a power cut could lose the last commits)
        cur = conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    event.listen(st.engine, "connect", wal)
    st.engine.dispose()  # connections opened so far did not get the pragmas
    return st


RUNG_PRUNERS = ("halving", "hyperband")
"""The pruners that compare trials at rungs (and take --reduction-factor)."""


def first_rung(opts: TuneOptions, eval_every: int) -> int:
    """The first epoch at which halving / hyperband compare trials (their min_resource)."""
    return max(opts.min_epochs, eval_every, 1)


def make_pruner(opts: TuneOptions, eval_every: int, max_epochs: int):
    """The Optuna pruner of `opts` for trials that report every `eval_every` epochs, up to
    `max_epochs` (hyperband's max_resource: its brackets span the first rung .. the cap)."""
    optuna = require_optuna()
    if opts.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=opts.startup_trials,
                                           n_warmup_steps=opts.min_epochs)
    if opts.pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=first_rung(opts, eval_every), reduction_factor=opts.reduction_factor)
    if opts.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=first_rung(opts, eval_every), max_resource=max_epochs,
            reduction_factor=opts.reduction_factor)
    return optuna.pruners.NopPruner()


def make_sampler(opts: TuneOptions, group: Group, worker: int = 0, salt: int = 0):
    optuna = require_optuna()
    if opts.sampler == "grid":
        class _Grid(optuna.samplers.GridSampler):
            # GridSampler.after_trial calls study.stop() on an exhausted grid, which raises
            # outside study.optimize; the tuning loop checks exhaustion itself.
            def after_trial(self, study, trial, state, values) -> None:
                pass

        return _Grid(group.space, seed=opts.sampler_seed)  # same order in every worker
    seed = opts.sampler_seed * 1_000_003 + worker * 10_007 + salt  # workers/resumes differ
    if opts.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def budget_attrs(opts: TuneOptions, group: Group, sw: Sweep, seed: int) -> dict:
    """What every study of one tuning shares (checked on resume; written into each row)."""
    n = len(group.specs)
    return {"sweep": sw.name, "sampler": opts.sampler, "pruner": opts.pruner,
            "trials": min(opts.trials or n, n) if opts.sampler == "grid" else (opts.trials or n),
            "epochs_per_trial": group.epochs, "grid_points": n, "seed": seed,
            "min_epochs": opts.min_epochs,
            **({"startup_trials": opts.startup_trials} if opts.pruner == "median" else {}),
            **({"reduction_factor": opts.reduction_factor} if opts.pruner in RUNG_PRUNERS
               else {}),
            "metric": group.specs[0].exp.eval.metric, "points": group.fingerprint()}


def open_study(st, sw: Sweep, group: Group, opts: TuneOptions, seed: int, worker: int = 0,
               create: bool = True):
    """The study of `group` in storage `st` (created on first use). A study that was started
    with other options, or over other grid points, is refused: its trials would not share one
    budget."""
    optuna = require_optuna()
    name = f"{sw.name}/{group.name}"
    want = budget_attrs(opts, group, sw, seed)
    pruner = make_pruner(opts, group.eval_every, group.epochs)
    try:
        study = optuna.load_study(study_name=name, storage=st, pruner=pruner,
                                  sampler=make_sampler(opts, group, worker))
    except KeyError:
        if not create:
            return None
        study = optuna.create_study(study_name=name, storage=st, direction="maximize",
                                    load_if_exists=True, pruner=pruner,
                                    sampler=make_sampler(opts, group, worker))
    have = study.user_attrs.get("budget")
    if have is None:
        study.set_user_attr("budget", want)
        study.set_user_attr("search_space", group.space)
    elif have != want:
        diff = {k: (have.get(k), want.get(k)) for k in set(have) | set(want)
                if have.get(k) != want.get(k)}
        raise ConfigError(f"{sw.out / DB}: study {name!r} was started "
                          f"with other settings {diff} (was, now); rerun with the same options "
                          "(and the same sweep file and --set), or use another --out")
    return study


def _state(t) -> str:
    return t.state.name.lower()


def _counts(t) -> bool:
    """Does trial t use the budget? Finished, pruned, running, or diverged (FAIL); not a
    duplicate proposal, and not a trial interrupted by a kill (its point is asked again)."""
    if t.user_attrs.get("duplicate_of") is not None:
        return False
    if t.state.name in ("COMPLETE", "PRUNED", "RUNNING"):
        return True
    return t.state.name == "FAIL" and bool(t.user_attrs.get("diverged"))


# ----------------------------------------------------------------------------------------------
# Locks: one tune command per folder; a short critical section around "count, then ask"


@contextlib.contextmanager
def _flock(path: Path, blocking: bool = True):
    import fcntl

    with open(path, "a") as fh:  # closing the file releases the lock
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            raise ConfigError(f"another softbpr tune is running on {path.parent} ({path.name}); "
                              "wait for it to finish, or use another --out") from None
        yield


def recover(st, studies) -> int:
    """After a killed tuning: trials still RUNNING are failed (marked interrupted), and every
    interrupted trial whose point has no other trial is asked again (enqueued with the same
    parameters; its run resumes from its state.pt). Call only while no worker runs.
    Returns the number of points asked again."""
    optuna = require_optuna()
    fail = optuna.trial.TrialState.FAIL
    n = 0
    for study in studies:
        sid = st.get_study_id_from_name(study.study_name)
        for t in study.get_trials(deepcopy=False):
            if t.state.name == "RUNNING":
                tid = st.get_trial_id_from_study_id_trial_number(sid, t.number)
                st.set_trial_user_attr(tid, "interrupted", True)
                st.set_trial_state_values(tid, fail)
        trials = study.get_trials(deepcopy=False)
        counted = [t for t in trials if _counts(t)]
        waiting = [t for t in trials if t.state.name == "WAITING"]
        taken = {_key(t.params) for t in counted}
        taken |= {_key(t.system_attrs.get("fixed_params", {})) for t in waiting}
        room = study.user_attrs["budget"]["trials"] - len(counted) - len(waiting)
        for t in trials:
            if (t.state.name == "FAIL" and t.user_attrs.get("interrupted") and t.params
                    and _key(t.params) not in taken and room > 0):
                room -= 1
                study.enqueue_trial(t.params, user_attrs={"resumes": t.number})
                taken.add(_key(t.params))
                n += 1
    return n


# ----------------------------------------------------------------------------------------------
# The tuning loop


class _OutOfBudget(Exception):
    """Raised from on_epoch when --budget is spent: the run keeps its state.pt and the trial is
    asked again by the next call."""


@dataclass
class _Clock:
    minutes: float = 0.0
    t0: float = dataclasses.field(default_factory=time.perf_counter)

    def left(self) -> float:
        return math.inf if not self.minutes else \
            self.minutes - (time.perf_counter() - self.t0) / 60.0


def _history(sw: Sweep, spec: RunSpec) -> list[dict]:
    return RunDir(sw.out / "runs" / spec.name).read_history()


def _result(sw: Sweep, spec: RunSpec) -> tuple[dict | None, dict | None]:
    rd = RunDir(sw.out / "runs" / spec.name)
    return rd.read_result(), rd.read_failed()


def run_trial(study, trial, group: Group, spec: RunSpec, sw: Sweep, opts: TuneOptions,
              clock: _Clock, log: Callable[[str], None] = print, verbose: bool = False) -> str:
    """Train (or resume, or read back) the run of `spec` as `trial`; tell Optuna its outcome.

    Returns the trial's state: complete | pruned | fail."""
    optuna = require_optuna()
    TS = optuna.trial.TrialState
    metric = spec.exp.eval.metric
    budget = study.user_attrs.get("budget", {})
    trial.set_user_attr("run", f"runs/{spec.name}")
    trial.set_user_attr("point_id", spec.point_id)
    best = -math.inf
    for row in _history(sw, spec):  # a resumed or already finished run: replay its reports
        if "valid" in row and metric in row["valid"]:
            best = max(best, row["valid"][metric])
            trial.report(best, row["epoch"])

    def on_epoch(row: dict) -> None:
        nonlocal best
        if "valid" in row and metric in row["valid"]:
            best = max(best, row["valid"][metric])
            trial.report(best, row["epoch"])
            if trial.should_prune():
                from .trainer import StopRun

                raise StopRun("pruned")
        if clock.left() <= 0:
            raise _OutOfBudget

    extra = {"tune": {"study": study.study_name, "trial": trial.number, **{
        k: budget.get(k) for k in ("sampler", "pruner", "trials", "epochs_per_trial",
                                   "grid_points")}}}
    try:
        run_sweep(sw, [spec], log=log, verbose=verbose, on_epoch=lambda s: on_epoch,
                  row_extra=lambda s: extra)
    except BaseException:  # --budget spent, Ctrl-C, SIGTERM, a bug: asked again by the next call
        trial.set_user_attr("interrupted", True)
        study.tell(trial, state=TS.FAIL)
        raise
    res, failed = _result(sw, spec)
    trial.set_user_attr("epochs", len(_history(sw, spec)))
    if res is None:
        trial.set_user_attr("diverged", True)
        trial.set_user_attr("error", (failed or {}).get("error", "no result.json"))
        study.tell(trial, state=TS.FAIL)
        return "fail"
    if res.get("stop_reason") == "pruned":
        study.tell(trial, state=TS.PRUNED)
        return "pruned"
    study.tell(trial, res["valid"][metric])
    return "complete"


def _copy_trial(study, trial, prev) -> str:
    """A proposal of a point an earlier trial has: record the earlier outcome, train nothing."""
    optuna = require_optuna()
    TS = optuna.trial.TrialState
    trial.set_user_attr("duplicate_of", prev.number)
    if prev.state.name == "COMPLETE":
        study.tell(trial, prev.value)
        return "complete"
    if prev.state.name == "PRUNED" and prev.intermediate_values:
        step = max(prev.intermediate_values)
        trial.report(prev.intermediate_values[step], step)
        study.tell(trial, state=TS.PRUNED)
        return "pruned"
    study.tell(trial, state=TS.FAIL)
    return "fail"


def tune_group(st, sw: Sweep, group: Group, opts: TuneOptions, seed: int, clock: _Clock,
               log: Callable[[str], None] = print, verbose: bool = False, worker: int = 0) -> bool:
    """Run trials of one study until its budget is used or its points are all tried.

    Returns False when --budget ran out (the caller stops), True otherwise."""
    study = open_study(st, sw, group, opts, seed, worker)
    n_budget = study.user_attrs["budget"]["trials"]
    all_points = {_key(p) for p in group.params.values()}
    lock = sw.out / ".tune-ask.lock"
    dups = 0
    while True:
        if clock.left() < 0.5:
            log(f"{group.name}: tuning budget of {clock.minutes:g} min spent; rerun to go on")
            return False
        with _flock(lock):
            trials = study.get_trials(deepcopy=False)
            counted = [t for t in trials if _counts(t)]
            tried = {_key(t.params) for t in counted}
            waiting = any(t.state.name == "WAITING" for t in trials)
            if not waiting and (len(counted) >= n_budget or tried >= all_points):
                return True
            if dups >= _MAX_DUPLICATES:
                log(f"{group.name}: the sampler proposed {dups} tried points in a row; stopping "
                    f"at {len(counted)} of {n_budget} trials")
                return True
            trial = study.ask()
            params = {k: trial.suggest_categorical(k, v) for k, v in group.space.items()}
        spec = group.lookup(params)
        prev = next((t for t in counted if _key(t.params) == _key(params)), None)
        if prev is not None:
            dups += 1
            _copy_trial(study, trial, prev)
            continue
        dups = 0
        tag = f"{group.name} trial {trial.number} ({len(counted) + 1}/{n_budget})"
        try:
            state = run_trial(study, trial, group, spec, sw, opts, clock,
                              log=lambda m, tag=tag: log(f"{tag}: {m}"), verbose=verbose)
        except _OutOfBudget:
            log(f"{tag}: tuning budget of {clock.minutes:g} min spent after epoch "
                f"{len(_history(sw, spec))}; rerun to resume it")
            return False
        if state == "pruned":
            res, _ = _result(sw, spec)
            log(f"{tag}: pruned after epoch {len(_history(sw, spec))} (best "
                f"{spec.exp.eval.metric} {res['valid'].get(spec.exp.eval.metric, math.nan):.4f})")


def summary(st, sw: Sweep, gs: list[Group], opts: TuneOptions, seed: int) -> list[dict]:
    """Per study: its budget, trials by state, training epochs used against the cap, and the
    best finished trial (on validation)."""
    out = []
    for g in gs:
        study = open_study(st, sw, g, opts, seed, create=False)
        if study is None:
            out.append({"study": f"{sw.name}/{g.name}", "dataset": g.dataset, "model": g.model,
                        "method": g.method, "started": False, "grid_points": len(g.specs),
                        "trials": {}, "epochs_used": 0, "best": None})
            continue
        trials = study.get_trials(deepcopy=False)
        real = [t for t in trials if t.user_attrs.get("duplicate_of") is None]
        states: dict = {}
        for t in real:
            if t.state.name == "FAIL" and t.user_attrs.get("interrupted"):
                continue  # asked again (its epochs are counted by the trial that resumed it)
            states[_state(t)] = states.get(_state(t), 0) + 1
        done = [t for t in trials if t.state.name == "COMPLETE"]
        best = max(done, key=lambda t: t.value) if done else None
        b = study.user_attrs["budget"]
        out.append({
            "study": study.study_name, "dataset": g.dataset, "model": g.model,
            "method": g.method, "budget": b, "trials": states,
            "duplicates": len(trials) - len(real),
            "epochs_used": sum(t.user_attrs.get("epochs", 0) for t in real
                               if not t.user_attrs.get("interrupted")),
            "epochs_cap": b["trials"] * b["epochs_per_trial"],
            "best": None if best is None else {
                "trial": best.number, "value": best.value, "params": best.params,
                "run": best.user_attrs.get("run"), "point_id": best.user_attrs.get("point_id")}})
    return out


def format_summary(rows: list[dict]) -> str:
    lines = [("| study | trials (budget) | complete | pruned | failed | epochs used / cap | "
              "best valid | best point |"), "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        t = r["trials"]
        b = r.get("budget") or {}
        best = r["best"]
        lines.append(
            f"| {r['dataset']} {r['model']} {r['method']} | {sum(t.values())} "
            f"({b.get('trials', '-')}) | {t.get('complete', 0)} | {t.get('pruned', 0)} | "
            f"{t.get('fail', 0)} | {r['epochs_used']} / {r.get('epochs_cap', '-')} | "
            + (f"{best['value']:.4f} | " + " ".join(f"{k}={v}" for k, v in best["params"].items())
               if best else "– | –") + " |")
    return "\n".join(lines)


def tune(sw: Sweep, specs: list[RunSpec], opts: TuneOptions, log: Callable[[str], None] = print,
         jobs: int = 1, budget_minutes: float = 0.0, verbose: bool = False,
         worker_argv: list[str] | None = None, worker: int = 0) -> list[dict]:
    """Tune every study of `specs` (see the module docstring); returns `summary` rows and merges
    them into `<out>/tune.json` (rows of other studies in the folder are kept).

    jobs > 1: runs `worker_argv` (this command line, plus `--worker K`) as `jobs` subprocesses
    sharing the studies. worker > 0: this process is such a worker (no lock, no recovery)."""
    opts.check()
    require_optuna()
    seed = opts.seed if opts.seed is not None else sw.seeds[0]
    gs = groups(specs, seed)
    if not gs:
        raise ConfigError(f"no runs with training seed {seed} to tune (--seed, or the sweep's "
                          "seeds)")
    sw.out.mkdir(parents=True, exist_ok=True)
    others = [] if worker else _summary_rows(sw.out / SUMMARY)  # checked before any training
    st = storage(sw.out)
    clock = _Clock(budget_minutes)
    if worker:
        for g in gs:
            if not tune_group(st, sw, g, opts, seed, clock, log, verbose, worker):
                break
        return []
    with _flock(sw.out / LOCK, blocking=False):
        studies = [open_study(st, sw, g, opts, seed) for g in gs]  # created (and checked) once
        for g in gs:
            first = first_rung(opts, g.eval_every)
            if opts.pruner in RUNG_PRUNERS and first > g.epochs:
                log(f"{g.name}: the first rung (epoch {first}) is past the trials' epoch cap "
                    f"({g.epochs}): {opts.pruner} will prune nothing")
        again = recover(st, studies)
        if again:
            log(f"{again} interrupted trial(s) asked again (their runs resume)")
        if jobs > 1:
            _run_workers(worker_argv or [], jobs, log)
        else:
            for g in gs:
                if not tune_group(st, sw, g, opts, seed, clock, log, verbose):
                    break
        rows = summary(st, sw, gs, opts, seed)
        write_json(sw.out / SUMMARY, merge_summary(others, rows))
    return rows


def _summary_rows(path: Path) -> list[dict]:
    """The rows of an existing `tune.json` (none if there is no file); a file that is not a
    tune summary is refused rather than overwritten."""
    if not path.exists():
        return []
    try:
        rows = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: not a tune summary ({e}); move it away to tune here") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and "study" in r for r in rows):
        raise ConfigError(f"{path}: not a tune summary (a JSON list of rows with a 'study' key); "
                          "move it away to tune here")
    return rows


def merge_summary(old: list[dict], new: list[dict]) -> list[dict]:
    """`old` summary rows with each study of `new` replaced in place or appended: a tuning of
    some studies keeps the rows of the others that share the folder."""
    fresh = {r["study"]: r for r in new}
    out = [fresh.pop(r["study"], r) for r in old]
    return out + [r for r in new if r["study"] in fresh]


def _run_workers(argv: list[str], jobs: int, log: Callable[[str], None]) -> None:
    """`jobs` copies of this tune command as worker subprocesses (lines prefixed [job k])."""
    codes = run_processes([[sys.executable, "-m", "softbpr", *argv, "--worker", str(k)]
                           for k in range(1, jobs + 1)], log)
    if any(codes):
        raise RuntimeError(f"tune workers exited with {codes}")


# ----------------------------------------------------------------------------------------------
# Command line (the `softbpr tune` subcommand)

TUNE_EPILOG = """\
examples:
  softbpr tune configs/sweep-table2.toml --dry-run              # the studies and their state
  softbpr tune configs/sweep-table2.toml                        # grid + median pruning; resumable
  softbpr tune configs/sweep-table2.toml --pruner halving --jobs 2
  softbpr tune configs/sweep-table2.toml --sampler tpe --trials 30  # same budget per method
  softbpr sweep configs/sweep-table2.toml --best --seeds 1,2,3,4,5  # seeds for the chosen points
  softbpr report sweeps/table2"""


def add_parser(sub) -> None:
    import argparse

    t = sub.add_parser("tune", help="tune a sweep file's grid on validation with Optuna, "
                       "pruning hopeless trials (needs softbpr[tune])", epilog=TUNE_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("file", metavar="SWEEP.toml")
    t.add_argument("--sampler", default="grid", choices=SAMPLERS,
                   help="grid: every grid point (Optuna's GridSampler); tpe, random: a "
                        "budgeted search over them (--trials)")
    t.add_argument("--pruner", default="median", choices=PRUNERS,
                   help="median: MedianPruner; halving: SuccessiveHalvingPruner; hyperband: "
                        "HyperbandPruner (halving brackets with later first rungs); none")
    t.add_argument("--trials", type=int, default=0, metavar="N",
                   help="trials per study (dataset x method); default: the number of points")
    t.add_argument("--seed", type=int, help="training seed of the trials (default: the "
                                             "sweep's first)")
    t.add_argument("--min-epochs", type=int, default=0, metavar="E",
                   help="no trial is pruned before epoch E (default 0)")
    t.add_argument("--startup-trials", type=int, default=5, metavar="N",
                   help="median: N trials finish before any is pruned (default 5)")
    t.add_argument("--reduction-factor", type=int, default=3, metavar="ETA",
                   help="halving, hyperband: 1 in ETA trials goes on at each rung (default 3)")
    t.add_argument("--sampler-seed", type=int, default=0, help="seed of the grid order / "
                                                               "TPE draws")
    t.add_argument("--quick", action="store_true", help="as sweep --quick")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for every run (repeatable)")
    t.add_argument("--only", action="append", default=[], metavar="KEY=VALUE",
                   help="tune only matching runs (repeatable; a key given twice matches either "
                        "value), e.g. preset=sdns")
    t.add_argument("--out", help="sweep folder (default: the file's [sweep] out)")
    t.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="N worker processes on the same studies (OMP_NUM_THREADS=1 each)")
    t.add_argument("--budget", type=float, default=0.0, metavar="MINUTES",
                   help="wall-clock budget of this call; the running trial stops resumable")
    t.add_argument("--dry-run", action="store_true", help="list the studies; train nothing")
    t.add_argument("--verbose", action="store_true", help="per-epoch lines of every run")
    t.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)


def run(args) -> int:
    """`softbpr tune`: returns the exit status."""
    from .sweep import expand, filter_runs, load_sweep, parse_assignments, parse_only

    require_optuna()
    opts = TuneOptions(args.sampler, args.pruner, args.trials, args.seed, args.min_epochs,
                       args.startup_trials, args.reduction_factor, args.sampler_seed)
    opts.check()
    sw = load_sweep(args.file, quick=args.quick, overrides=parse_assignments(args.set),
                    out=args.out, seeds=None if args.seed is None else [args.seed])
    specs = filter_runs(expand(sw, args.file), parse_only(args.only))
    seed = opts.seed if opts.seed is not None else sw.seeds[0]
    if args.dry_run:
        gs = groups(specs, seed)
        have = (sw.out / DB).exists()
        st = storage(sw.out) if have else None
        print(f"tune {sw.name}: {len(gs)} studies -> {sw.out / DB}")
        for g in gs:
            study = open_study(st, sw, g, opts, seed, create=False) if st else None
            n = {}
            for t in (study.get_trials(deepcopy=False) if study else []):
                n[_state(t)] = n.get(_state(t), 0) + 1
            print(f"  {g.name}: {len(g.specs)} points over "
                  f"{', '.join(g.space) or '(one point)'}; "
                  + (", ".join(f"{v} {k}" for k, v in n.items()) or "not started"))
        return 0
    if args.jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {args.jobs}")
    if not (math.isfinite(args.budget) and args.budget >= 0):
        raise ConfigError(f"--budget must be minutes >= 0 (0: no budget), got {args.budget}")
    argv = [a for a in getattr(args, "argv", []) or []]
    worker_argv = _drop_option(argv, "--jobs")
    log = (lambda m: print(m, flush=True))  # (SIGTERM unwinds as Ctrl-C: cli.main)
    try:
        rows = tune(sw, specs, opts, log=log, jobs=args.jobs, budget_minutes=args.budget,
                    verbose=args.verbose, worker_argv=worker_argv, worker=args.worker)
    except KeyboardInterrupt:
        print(f"softbpr: interrupted; rerun the same command to resume ({sw.out})",
              file=sys.stderr)
        return 130
    if args.worker:
        return 0
    print(format_summary(rows))
    print(f"studies: {sw.out / DB}; summary: {sw.out / SUMMARY}; results: "
          f"{sw.out / 'results.jsonl'}")
    return 0


def _drop_option(argv: list[str], name: str) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == name:
            skip = True
        elif not a.startswith(name + "="):
            out.append(a)
    return out


__all__ = [
    "PRUNERS",
    "SAMPLERS",
    "Group",
    "TuneOptions",
    "add_parser",
    "format_summary",
    "groups",
    "merge_summary",
    "open_study",
    "recover",
    "require_optuna",
    "run",
    "run_trial",
    "summary",
    "tune",
    "tune_group",
]
