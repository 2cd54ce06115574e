"""Pruned tuning (softbpr tune, tune.py): a sweep grid as Optuna studies (one per dataset and
method), pruned trials stopped through trainer.StopRun and written as ordinary sweep runs, resuming
after an interrupt or a kill without redoing trials, rows that report and `sweep --best` read."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna", reason="softbpr tune needs the 'tune' extra (optuna)")

import softbpr.tune as tune_mod
from softbpr.cli import main
from softbpr.config import ConfigError
from softbpr.report import build_table, load_results, select, to_markdown
from softbpr.rundir import RunDir
from softbpr.sweep import expand, load_sweep, read_rows
from softbpr.tune import TuneOptions, groups, tune

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, epochs: int = 4, grid: str | None = None) -> Path:
    f = tmp_path / "s.toml"
    f.write_text(f"""
[sweep]
name = "t"
out = "{tmp_path / 'out'}"
seeds = [1, 2]

[base]
data = "synthetic-small"
dim = 8
layers = 1
epochs = {epochs}
eval_every = 1
patience = 0
batch_size = 256
max_batches = 3
topk = [5, 10]
metric = "ndcg@10"
device = "cpu"
""" + (grid if grid is not None else """
[grid]
lr = [0.05, 0.02, 0.0001]

[[variants]]
preset = "dns"
pool_size = 4

[[variants]]
preset = "sdns"
pool_size = [4, 8]
alpha = 0.8
"""))
    return f


def quiet(_m):
    pass


def test_studies_per_dataset_and_method_with_the_varying_keys(tmp_path):
    sw = load_sweep(write(tmp_path))
    gs = {g.method: g for g in groups(expand(sw), seed=1)}
    assert set(gs) == {"dns", "sdns"}
    assert gs["dns"].space == {"lr": [0.05, 0.02, 0.0001]}
    assert gs["sdns"].space == {"lr": [0.05, 0.02, 0.0001], "pool_size": [4, 8]}
    assert len(gs["sdns"].specs) == 6 and all(s.seed == 1 for s in gs["sdns"].specs)
    s = gs["sdns"].lookup({"lr": 0.0001, "pool_size": 8})
    assert s.exp.train.lr == 0.0001 and s.exp.sampler.pool_size == 8
    # points that are not a full product (two variants of one method): one `point` parameter
    sw2 = load_sweep(write(tmp_path, grid="""
[[variants]]
preset = "dns"
lr = [0.01, 0.02]
[[variants]]
preset = "dns"
pool_size = [2, 8]
"""))
    (g,) = groups(expand(sw2), seed=1)
    assert list(g.space) == ["point"] and len(g.space["point"]) == 4
    assert g.lookup({"point": g.space["point"][3]}).point_id == g.specs[3].point_id


def test_grid_is_tuned_with_pruning_and_rows_report_reads(tmp_path):
    sw = load_sweep(write(tmp_path))
    opts = TuneOptions(pruner="median", startup_trials=1, min_epochs=1)
    rows = tune(sw, expand(sw), opts, log=quiet)
    by = {r["method"]: r for r in rows}
    assert by["dns"]["budget"]["trials"] == 3 and by["sdns"]["budget"]["trials"] == 6
    assert by["dns"]["budget"]["epochs_per_trial"] == 4
    t = by["sdns"]["trials"]
    assert t.get("complete", 0) + t.get("pruned", 0) == 6 and t.get("pruned", 0) >= 1
    assert by["sdns"]["epochs_used"] < by["sdns"]["epochs_cap"] == 24
    assert json.loads((sw.out / "tune.json").read_text()) == rows
    # every trial is one sweep run + one results.jsonl row; pruned ones say so
    res = read_rows(sw.out / "results.jsonl")
    assert len(res) == 9 and len({r["run"] for r in res}) == 9
    assert all(r["seed"] == 1 and r["tune"]["pruner"] == "median" for r in res)
    pruned = [r for r in res if r["stop_reason"] == "pruned"]
    assert len(pruned) == sum(x["trials"].get("pruned", 0) for x in rows)
    for r in pruned:  # stopped early, tested at their best epoch
        assert r["epochs"] < 4 and r["test"] and RunDir(sw.out / r["run"]).is_finished()
    # report chooses among the finished trials, the same point as Optuna's best trial
    choices = select(load_results(sw.out))
    for (row, ds), c in choices.items():
        assert all(r["stop_reason"] != "pruned" for r in c.runs)
        assert c.point_id == by[row[0]]["best"]["point_id"]
        assert c.score == pytest.approx(by[row[0]]["best"]["value"])
    md = to_markdown(build_table(load_results(sw.out), metrics=["ndcg@10"], proposed=None))
    assert "pruned)" in md
    # plots' --best (from the run directories) never picks a pruned run, even a leading one
    from softbpr.plots import best_only, load_runs

    rd = RunDir(sw.out / pruned[0]["run"])
    res = rd.read_result()
    rd.write_result({**res, "valid": {k: 1.0 for k in res["valid"]}})
    chosen = {r.point_id for r in best_only(load_runs(sw.out))}
    assert chosen == {c.point_id for c in choices.values()}


def test_pruned_trials_are_listed_not_chosen():
    def row(pid, v, stop):
        return {"run": pid, "point_id": pid, "method": "dns", "dataset": "d", "seed": 1,
                "valid": {"ndcg@50": v}, "test": {"ndcg@50": v}, "stop_reason": stop}

    rows = [row("a", 0.30, "pruned"), row("b", 0.20, "epochs"), row("c", 0.10, "early_stop")]
    (c,) = select(rows).values()
    assert c.point_id == "b" and c.n_points == 3 and c.n_pruned == 1
    (c,) = select([rows[0]]).values()  # nothing finished: the pruned point is all there is
    assert c.point_id == "a"


def _kill_after(f: Path, out: Path, timeout: float = 60.0) -> None:
    """Start `softbpr tune f` and SIGKILL it while its second trial trains."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.Popen([sys.executable, "-m", "softbpr", "tune", str(f), "--pruner", "none"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    t0 = time.time()
    try:
        while time.time() - t0 < timeout:
            if p.poll() is not None:
                pytest.fail(f"tune ended before it was killed: {p.stderr.read().decode()}")
            done = len(read_rows(out / "results.jsonl"))
            running = [d for d in (out / "runs").glob("*") if (d / "state.pt").exists()
                       and not (d / "result.json").exists()] if (out / "runs").exists() else []
            if done >= 1 and running and RunDir(running[0]).n_epochs() >= 2:
                break
            time.sleep(0.05)
        else:
            pytest.fail("no second trial within the timeout")
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()


def test_resume_after_kill_finishes_the_study_without_redoing_trials(tmp_path):
    f = write(tmp_path, epochs=12, grid="""
[grid]
lr = [0.02, 0.01, 0.005]
[[variants]]
preset = "dns"
pool_size = 4
""")
    sw = load_sweep(f)
    _kill_after(f, sw.out)
    st = tune_mod.storage(sw.out)
    (study,) = [optuna.load_study(study_name=s.study_name, storage=st)
                for s in optuna.get_all_study_summaries(st)]
    states = [t.state.name for t in study.trials]
    assert "RUNNING" in states  # what a kill leaves
    before = {r["run"]: r for r in read_rows(sw.out / "results.jsonl")}
    killed = next(t for t in study.trials if t.state.name == "RUNNING")
    killed_run = sw.out / killed.user_attrs["run"]
    epochs_at_kill = RunDir(killed_run).n_epochs()
    mtimes = {r: (sw.out / r / "history.jsonl").stat().st_mtime_ns for r in before}

    rows = tune(sw, expand(sw), TuneOptions(pruner="none"), log=quiet)
    assert rows[0]["trials"] == {"complete": 3}
    res = read_rows(sw.out / "results.jsonl")
    assert len(res) == 3 and len({r["run"] for r in res}) == 3  # no trial trained twice
    for r in before:  # finished trials untouched
        assert (sw.out / r / "history.jsonl").stat().st_mtime_ns == mtimes[r]
    hist = RunDir(killed_run).read_history()  # the killed run resumed, not restarted
    assert [h["epoch"] for h in hist] == list(range(1, 13))
    assert epochs_at_kill >= 2
    study = optuna.load_study(study_name=study.study_name, storage=st)
    again = [t for t in study.trials if t.user_attrs.get("resumes") == killed.number]
    assert len(again) == 1 and again[0].state.name == "COMPLETE"
    # a third call has nothing left to do
    n = len(study.trials)
    tune(sw, expand(sw), TuneOptions(pruner="none"), log=quiet)
    assert len(optuna.load_study(study_name=study.study_name, storage=st).trials) == n


def test_interrupt_and_budget_leave_the_trial_resumable(tmp_path, monkeypatch):
    f = write(tmp_path, epochs=5, grid="""
[grid]
lr = [0.02, 0.01]
[[variants]]
preset = "dns"
pool_size = 4
""")
    sw = load_sweep(f)
    calls = {"n": 0}
    real = tune_mod._Clock.left

    def left(self):  # the budget runs out after the second epoch of the second trial
        calls["n"] += 1
        return -1.0 if calls["n"] > 8 else real(self)

    monkeypatch.setattr(tune_mod._Clock, "left", left)
    rows = tune(sw, expand(sw), TuneOptions(pruner="none"), log=quiet, budget_minutes=60)
    assert rows[0]["trials"] == {"complete": 1}
    assert len(read_rows(sw.out / "results.jsonl")) == 1
    monkeypatch.setattr(tune_mod._Clock, "left", real)
    rows = tune(sw, expand(sw), TuneOptions(pruner="none"), log=quiet)
    assert rows[0]["trials"] == {"complete": 2} and rows[0]["epochs_used"] == 10
    for r in read_rows(sw.out / "results.jsonl"):
        assert [h["epoch"] for h in RunDir(sw.out / r["run"]).read_history()] == [1, 2, 3, 4, 5]


def test_same_budget_is_recorded_and_enforced(tmp_path):
    sw = load_sweep(write(tmp_path, epochs=2))
    rows = tune(sw, expand(sw), TuneOptions(sampler="tpe", trials=2, pruner="halving"),
                log=quiet)
    assert {r["method"]: r["budget"]["trials"] for r in rows} == {"dns": 2, "sdns": 2}
    assert all(sum(r["trials"].values()) == 2 for r in rows)
    assert all(r["tune"]["trials"] == 2 for r in read_rows(sw.out / "results.jsonl"))
    with pytest.raises(ConfigError, match="other settings"):
        tune(sw, expand(sw), TuneOptions(sampler="tpe", trials=3, pruner="halving"), log=quiet)


def test_a_point_proposed_twice_is_not_trained_twice(tmp_path):
    f = write(tmp_path, epochs=2, grid="""
[grid]
lr = [0.02, 0.01]
[[variants]]
preset = "dns"
pool_size = 4
""")
    sw = load_sweep(f)
    opts = TuneOptions(sampler="tpe", trials=1, pruner="none")
    tune(sw, expand(sw), opts, log=quiet)
    st = tune_mod.storage(sw.out)
    (name,) = [s.study_name for s in optuna.get_all_study_summaries(st)]
    study = optuna.load_study(study_name=name, storage=st)
    (first,) = study.trials
    study.enqueue_trial(first.params)  # the sampler proposes the tried point again
    rows = tune(sw, expand(sw), opts, log=quiet)
    assert rows[0]["trials"] == {"complete": 1} and rows[0]["duplicates"] == 1
    second = optuna.load_study(study_name=name, storage=st).trials[1]
    assert second.user_attrs["duplicate_of"] == 0 and second.value == first.value
    assert len(read_rows(sw.out / "results.jsonl")) == 1


def test_cli_tune_then_seeds_for_the_chosen_point(tmp_path, capsys):
    f = write(tmp_path, epochs=3, grid="""
[grid]
lr = [0.05, 0.0001]
[[variants]]
preset = "dns"
pool_size = 4
""")
    assert main(["tune", str(f), "--startup-trials", "1", "--min-epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "| synthetic-small lightgcn dns | 2 (2) |" in out
    assert main(["tune", str(f), "--dry-run", "--startup-trials", "1", "--min-epochs", "1"]) == 0
    assert "dns: 2 points over lr; " in capsys.readouterr().out
    assert main(["tune", str(f), "--seed", "7", "--dry-run", "--out", str(tmp_path / "o7")]) == 0
    assert "dns: 2 points over lr; not started" in capsys.readouterr().out
    assert main(["sweep", str(f), "--best", "--seeds", "1,2"]) == 0
    sw = load_sweep(f)
    (c,) = select(load_results(sw.out)).values()
    assert [r["seed"] for r in c.runs] == [1, 2] and c.runs[0]["config"]["lr"] == 0.05
    try:  # argparse rejects it
        rc = main(["tune", str(f), "--pruner", "nope"])
    except SystemExit as e:
        rc = e.code
    assert rc == 2
    capsys.readouterr()
    assert main(["tune", str(f), "--pruner", "none"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("softbpr: error: ") and "other settings" in err and len(
        err.strip().splitlines()) == 1


def test_missing_optuna_says_how_to_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(ConfigError, match=r"pip install 'softbpr\[tune\]'"):
        tune_mod.require_optuna()
    assert main(["tune", str(write(tmp_path))]) == 2
    assert "pip install 'softbpr[tune]'" in capsys.readouterr().err


def test_one_tuning_per_folder(tmp_path):
    import fcntl

    sw = load_sweep(write(tmp_path, epochs=1))
    sw.out.mkdir(parents=True)
    with open(sw.out / "tune.lock", "a") as fh:  # as a running `softbpr tune` holds it
        fcntl.flock(fh, fcntl.LOCK_EX)
        with pytest.raises(ConfigError, match="another softbpr tune is running"):
            tune(sw, expand(sw), TuneOptions(), log=quiet)
    assert read_rows(sw.out / "results.jsonl") == []


def test_tuning_some_studies_keeps_the_summary_rows_of_the_others(tmp_path):
    """tune.json holds every study tuned in the folder: a call over a subset replaces its own
    rows in place and keeps the others' (it used to keep only the last call's)."""
    sw = load_sweep(write(tmp_path, epochs=1))
    specs = expand(sw)
    opts = TuneOptions(pruner="none")
    by = lambda m: [s for s in specs if s.point["preset"] == m]
    tune(sw, by("sdns"), opts, log=quiet)
    tune(sw, by("dns"), opts, log=quiet)
    rows = json.loads((sw.out / "tune.json").read_text())
    assert [r["method"] for r in rows] == ["sdns", "dns"]
    assert [sum(r["trials"].values()) for r in rows] == [6, 3]
    again = tune(sw, by("sdns"), opts, log=quiet)  # nothing left to train: rows refreshed in place
    rows = json.loads((sw.out / "tune.json").read_text())
    assert [r["method"] for r in rows] == ["sdns", "dns"] and rows[0] == again[0]


@pytest.mark.parametrize("text", ["{not json", '{"study": "a"}', '[{"no_study": 1}]'])
def test_a_file_that_is_not_a_tune_summary_is_refused_before_training(tmp_path, text):
    sw = load_sweep(write(tmp_path, epochs=1))
    sw.out.mkdir(parents=True)
    (sw.out / "tune.json").write_text(text)
    with pytest.raises(ConfigError, match=r"tune\.json: not a tune summary"):
        tune(sw, expand(sw), TuneOptions(pruner="none"), log=quiet)
    assert (sw.out / "tune.json").read_text() == text
    assert not (sw.out / "results.jsonl").exists()


@pytest.mark.parametrize("args,msg", [
    (["--budget", "-1"], "--budget must be minutes >= 0"),
    (["--budget", "nan"], "--budget must be minutes >= 0"),
    (["--only", "lr=0.7"], "no runs match --only lr=0.7"),
])
def test_cli_refuses_a_bad_budget_or_an_empty_selection(tmp_path, capsys, args, msg):
    f = write(tmp_path)
    assert main(["tune", str(f), *args]) != 0
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_jobs_share_the_studies(tmp_path):
    f = write(tmp_path, epochs=2)
    env = {**os.environ}
    env.pop("OMP_NUM_THREADS", None)
    p = subprocess.run([sys.executable, "-m", "softbpr", "tune", str(f), "--jobs", "2",
                        "--pruner", "none"], check=False, capture_output=True, text=True,
                       env=env, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    assert "[job 1]" in p.stdout and "[job 2]" in p.stdout
    res = read_rows(tmp_path / "out" / "results.jsonl")
    assert len(res) == 9 and len({r["run"] for r in res}) == 9  # every point once
    rows = json.loads((tmp_path / "out" / "tune.json").read_text())
    assert [r["trials"] for r in rows] == [{"complete": 3}, {"complete": 6}]


def test_hyperband_spans_the_first_rung_to_the_epoch_cap(tmp_path):
    """hyperband: Optuna's HyperbandPruner with brackets from max(min_epochs, eval_every) to the
    trials' epoch cap; a tuning with it runs, prunes through StopRun and records η."""
    p = tune_mod.make_pruner(TuneOptions(pruner="hyperband", min_epochs=4, reduction_factor=2),
                             eval_every=2, max_epochs=150)
    assert isinstance(p, optuna.pruners.HyperbandPruner)
    assert (p._min_resource, p._max_resource, p._reduction_factor) == (4, 150, 2)
    p = tune_mod.make_pruner(TuneOptions(pruner="hyperband"), eval_every=3, max_epochs=30)
    assert (p._min_resource, p._max_resource, p._reduction_factor) == (3, 30, 3)
    sw = load_sweep(write(tmp_path))
    rows = tune(sw, expand(sw), TuneOptions(pruner="hyperband", min_epochs=1,
                                            reduction_factor=2), log=quiet)
    assert all(r["budget"]["pruner"] == "hyperband" and r["budget"]["reduction_factor"] == 2
               for r in rows)
    assert sum(r["trials"].get("pruned", 0) for r in rows) >= 1
    res = read_rows(sw.out / "results.jsonl")
    assert len(res) == 9 and all(r["tune"]["pruner"] == "hyperband" for r in res)
    assert all(RunDir(sw.out / r["run"]).is_finished() for r in res)


def test_a_first_rung_past_the_cap_is_said(tmp_path):
    """halving / hyperband with --min-epochs beyond the epoch cap build no rung: said, not
    silently a pruner that never prunes."""
    sw = load_sweep(write(tmp_path, epochs=2))
    said = []
    tune(sw, expand(sw), TuneOptions(sampler="tpe", trials=1, pruner="hyperband", min_epochs=4),
         log=said.append)
    assert any("past the trials' epoch cap (2): hyperband will prune nothing" in m for m in said)
