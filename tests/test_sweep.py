"""Sweeps: expansion (grids, per-preset variants, bundles, --quick), the shipped study files, one
row per finished run, and resuming an interrupted sweep without redoing finished runs."""

import json
from pathlib import Path

import pytest

import softbpr.trainer as train_mod
from softbpr.cli import main
from softbpr.config import ConfigError
from softbpr.sweep import (
    expand,
    filter_runs,
    load_sweep,
    parse_only,
    read_rows,
    run_jobs,
    run_sweep,
    shard_command,
    status,
)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"




def write_sweep(path: Path, data, out: Path, extra: str = "", seeds="[1]") -> Path:
    path.write_text(f"""
[sweep]
name = "t"
out = "{out}"
seeds = {seeds}

[base]
data = "{data}"
dim = 8
layers = 1
epochs = 2
eval_every = 1
patience = 0
batch_size = 128
topk = [5, 10]
metric = "ndcg@10"
device = "cpu"
{extra}
""")
    return path


GRID = """
[grid]
lr = [0.01, 0.005]

[[variants]]
preset = "rns"

[[variants]]
preset = "sdns"
pool_size = [4, 8]
alpha = 0.8
"""


def test_expand_per_variant_grids_and_stable_names(tmp_path):
    f = write_sweep(tmp_path / "s.toml", "synthetic-small", tmp_path / "o", GRID, "[1, 2]")
    sw = load_sweep(f)
    specs = expand(sw)
    # rns: 2 lr; sdns: 2 lr x 2 H; x 2 seeds
    assert len(specs) == (2 + 4) * 2
    assert sorted({s.exp.method for s in specs}) == ["rns", "sdns"]
    assert {s.exp.loss.alpha for s in specs if s.exp.method == "sdns"} == {0.8}
    assert {s.exp.loss.alpha for s in specs if s.exp.method == "rns"} == {0.0}
    # names are deterministic, unique, and the seeds of a point share its id
    assert [s.name for s in specs] == [s.name for s in expand(load_sweep(f))]
    assert len({s.name for s in specs}) == len(specs)
    by_point: dict = {}
    for s in specs:
        by_point.setdefault(s.point_id, set()).add(s.seed)
    assert len(by_point) == 6 and all(v == {1, 2} for v in by_point.values())
    assert any(s.name.startswith("sdns_lr0.01_H4_a0.8-") for s in specs)
    # --set and --only; the device is not part of a point's identity
    ids = {s.point_id for s in specs}
    sw2 = load_sweep(f, overrides={"device": "cpu", "reg": 0.0})
    assert {s.exp.train.reg for s in expand(sw2)} == {0.0}
    assert {s.point_id for s in expand(load_sweep(f, overrides={"device": "cuda"}))} == ids
    only = filter_runs(specs, {"preset": "sdns", "pool_size": 8})
    assert len(only) == 4 and all(s.exp.sampler.pool_size == 8 for s in only)


def test_quick_takes_first_values_and_the_small_dataset(tmp_path):
    grid = """
[grid]
dataset = [{ label = "gw", data = "../shared/data/gowalla" },
           { data = "x.csv", columns = "user,item" }]
lr = [0.01, 0.005]
"""
    f = write_sweep(tmp_path / "s.toml", "synthetic", tmp_path / "o", grid, "[3, 4]")
    full = expand(load_sweep(f))
    assert len(full) == 8 and {s.dataset for s in full} == {"gw", "x.csv"}
    assert {s.dataset for s in filter_runs(full, {"dataset": "gw"})} == {"gw"}
    assert len(filter_runs(full, {"data": "gowalla", "lr": 0.01})) == 2
    # --only given twice for one key: either value (it used to keep the last one silently)
    only = parse_only(["lr=0.01", "lr=0.005", "dataset=gw"])
    assert only == {"lr": (0.01, 0.005), "dataset": ("gw",)}
    assert len(filter_runs(full, only)) == 4
    assert len(filter_runs(full, parse_only(["lr=0.01", "dataset=gw"]))) == 2
    with pytest.raises(ConfigError, match="no runs match --only lr=0.5 lr=0.6"):
        filter_runs(full, parse_only(["lr=0.5", "lr=0.6"]))
    # runs are ordered by dataset, so each dataset is loaded once
    assert [s.dataset for s in full] == ["gw"] * 4 + ["x.csv"] * 4
    q = load_sweep(f, quick=True)
    assert q.out == tmp_path / "o-quick" and q.seeds == (3,)
    (spec,) = expand(q)
    assert spec.exp.data.data == "synthetic-small"
    assert spec.exp.data.columns is None  # the data section was reset
    assert spec.exp.train.epochs == 2 and spec.exp.train.lr == 0.01 and spec.dataset is None


@pytest.mark.parametrize("body,msg", [
    ("[grid]\nseed = [1, 2]\n", "seeds"),
    ("[grid]\npool_sise = [1]\n", "did you mean 'pool_size'"),
    ("[grids]\nlr = [1]\n", "unknown table"),
    ("[[variants]]\npreset = \"nope\"\n", "unknown preset"),
    ("[grid]\nlr = []\n", r"lr = \[\] has no values"),
    ("[[variants]]\npool_size = []\n", r"pool_size = \[\] has no values"),
])
def test_bad_sweep_files_fail_before_training(tmp_path, body, msg):
    f = write_sweep(tmp_path / "s.toml", "synthetic-small", tmp_path / "o", body)
    with pytest.raises(ConfigError, match=msg):
        expand(load_sweep(f))


@pytest.mark.parametrize("body,msg", [
    ("[[variants]]\nlr = \"a\"\n",
     r"s\.toml: train\.lr must be float, got 'a' \(grid point lr = 'a'\)$"),
    ("[grid]\nlr = [0.01, -1.0]\n",
     r"s\.toml: train\.lr must be > 0, got -1\.0 \(grid point lr = -1\.0\)$"),
])
def test_a_bad_value_in_a_sweep_file_names_the_file_and_point(tmp_path, body, msg):
    """A value that fails the experiment's checks names the sweep file and the grid point (it
    used to name only the key, leaving the user to find which file and point)."""
    f = write_sweep(tmp_path / "s.toml", "synthetic-small", tmp_path / "o", body)
    with pytest.raises(ConfigError, match=msg):
        expand(load_sweep(f), str(f))


def test_a_bad_value_from_base_or_set_is_not_blamed_on_the_grid_point(tmp_path):
    """The same check names [base] or --set when the value came from there, not the point."""
    f = write_sweep(tmp_path / "s.toml", "synthetic-small", tmp_path / "o",
                    "[grid]\nlr = [0.01, 0.02]\n")
    with pytest.raises(ConfigError, match=r"s\.toml: train\.reg must be >= 0, got -1\.0 \(--set\)$"):
        expand(load_sweep(f, overrides={"reg": -1.0}), str(f))
    f.write_text(f.read_text().replace("[base]\n", "[base]\nreg = -1.0\n"))
    with pytest.raises(ConfigError, match=r"s\.toml: train\.reg must be >= 0, got -1\.0 \(\[base\]\)$"):
        expand(load_sweep(f), str(f))
    # --quick: [quick] applies after the point and --set after [quick] (a data value set with
    # --set is not undone by [quick]'s data reset); a [quick] value is [quick]'s
    with pytest.raises(ConfigError, match=r"data\.kcore must be >= 0, got -1 \(--set\)$"):
        expand(load_sweep(f, quick=True, overrides={"kcore": -1}), str(f))
    f.write_text(f.read_text().replace("reg = -1.0\n", "") + "[quick]\nepochs = 0\n")
    with pytest.raises(ConfigError, match=r"train\.epochs must be >= 1, got 0 \(\[quick\]\)$"):
        expand(load_sweep(f, quick=True), str(f))
    # a failure only the layers together make: all of them named
    f.write_text(f.read_text().replace("[quick]\nepochs = 0\n", "").replace(
        "[base]\n", "[base]\nmess_dropout = 0.1\nlr = -1.0\n").replace(
        "lr = [0.01, 0.02]", 'model = ["ngcf"]'))
    with pytest.raises(ConfigError, match=r"train\.lr must be > 0, got -1\.0 \(\[base\] with "
                                          r"grid point model = 'ngcf'\)$"):
        expand(load_sweep(f), str(f))


@pytest.mark.parametrize("text,msg", [
    ("sweep = 5\n", r"sweep must be a table"),
    ("grid = 5\n", r"grid must be a table"),
    ("quick = 5\n", r"quick must be a table"),
    ("base = [1, 2]\n", r"base must be a table"),
    ("variants = 5\n", r"variants must be an array of tables"),
    ("variants = [1, 2]\n", r"variants must be an array of tables"),
    ("[base]\ntrain = 5\n", r"\[base\] train must be a table of train settings"),
    ("[[variants]]\neval = \"x\"\n", r"\[variants\] eval must be a table"),
    ("[sweep]\nout = 5\n", r"\[sweep\] out must be a non-empty string"),
    ("[sweep]\nname = [1]\n", r"\[sweep\] name must be a non-empty string"),
    ("[sweep]\nkeep = 5\n", r"\[sweep\] keep must be a list of file names"),
    ("[sweep]\nkeep = [\"model\"]\n", r"\[sweep\] keep: \['model'\] are not heavy run files"),
])
def test_sweep_file_of_the_wrong_shape_is_one_line_naming_the_table(tmp_path, text, msg):
    """Wrong-typed tables and [sweep] keys are refused naming the file and table (they used to
    end in a traceback, or `keep = "model.pt"` was read as its characters)."""
    f = tmp_path / "s.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=rf"s\.toml: {msg}"):
        load_sweep(f)


def test_sweep_file_with_a_byte_order_mark_reads_like_without(tmp_path):
    f = write_sweep(tmp_path / "s.toml", "synthetic-small", tmp_path / "o")
    g = tmp_path / "bom.toml"
    g.write_bytes(b"\xef\xbb\xbf" + f.read_bytes())
    a, b = load_sweep(f), load_sweep(g)
    assert (a.base, a.grid, a.seeds, a.out) == (b.base, b.grid, b.seeds, b.out)


def test_keep_takes_one_name_or_a_list(tmp_path):
    f = write_sweep(tmp_path / "s.toml", "synthetic-small", tmp_path / "o")
    f.write_text(f.read_text().replace('name = "t"', 'name = "t"\nkeep = "model.pt"'))
    assert load_sweep(f).keep == ("model.pt",)
    f.write_text(f.read_text().replace('keep = "model.pt"', 'keep = ["model.pt", "state.pt"]'))
    assert load_sweep(f).keep == ("model.pt", "state.pt")


def test_cli_refuses_what_would_run_nothing_or_elsewhere(tmp_path, capsys):
    """--only matching nothing, --set seed (ignored before), an empty --out, --budget < 0 or
    not a number, --jobs < 1: one line each, nothing written."""
    f = write_sweep(tmp_path / "s.toml", "synthetic-small", tmp_path / "o")
    for args, msg in ((["--only", "lr=0.5"], "no runs match --only lr=0.5"),
                      (["--set", "seed=5"], "--set seed=...: set training seeds with --seeds"),
                      (["--out", ""], "--out: empty"),
                      (["--budget", "-1"], "argument --budget: must be minutes >= 0"),
                      (["--budget", "nan"], "argument --budget: must be minutes >= 0"),
                      (["--jobs", "0"], "argument --jobs: must be an integer >= 1")):
        assert main(["sweep", str(f), *args]) != 0
        err = capsys.readouterr().err
        assert msg in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_sweep_refuses_to_append_to_a_file_that_is_not_its_results(tmp_path, capsys):
    f = write_sweep(tmp_path / "s.toml", "synthetic-small", tmp_path / "o")
    (tmp_path / "o").mkdir()
    for notes in ("my notes\n", "my notes", '{"mine": 1}\n'):
        (tmp_path / "o" / "results.jsonl").write_text(notes)
        assert main(["sweep", str(f)]) != 0
        err = capsys.readouterr().err
        assert "results.jsonl" in err and "not a" in err and err.count("\n") == 1
        assert (tmp_path / "o" / "results.jsonl").read_text() == notes
        assert not list((tmp_path / "o").glob("runs/*"))


def test_every_study_file_in_configs_expands():
    """Every sweep file in configs/ (the studies behind docs/results) builds all its runs."""
    files = [f for f in sorted(CONFIGS.glob("*.toml")) if "[sweep]" in f.read_text()]
    assert len(files) > 10
    for f in files:
        assert expand(load_sweep(f)), f


def test_shipped_study_files_expand():
    files = sorted(CONFIGS.glob("sweep-*.toml"))
    names = {f.stem for f in files}
    assert {"sweep-table2", "sweep-fig3ab", "sweep-fig3cd", "sweep-fig4", "sweep-fig5",
            "sweep-fig6"} <= names
    for f in files:
        full, quick = expand(load_sweep(f)), expand(load_sweep(f, quick=True))
        assert full and 1 <= len(quick) <= 6, f
        assert all(s.exp.data.data == "synthetic-small" and s.exp.train.epochs == 2 for s in quick)
    t2 = expand(load_sweep(CONFIGS / "sweep-table2.toml", seeds=[1]))
    per = {}
    for s in t2:
        per.setdefault((s.exp.method, s.dataset), set()).add(s.point_id)
    sizes = {m: len(ids) for (m, ds), ids in per.items() if ds == "taobao"}
    assert sizes == {"rns": 16, "irgan": 32, "advir": 32, "dns": 64, "mixgcf": 64, "sdns": 320}
    sd = [s for s in t2 if s.exp.method == "sdns"]
    assert {round(1 - s.exp.loss.alpha, 2) for s in sd} == {0.05, 0.1, 0.2, 0.3, 0.4}
    assert {s.exp.train.lr for s in sd} == {5e-4, 1e-3, 5e-3, 1e-2}
    assert {s.exp.train.reg for s in sd} == {0.0, 1e-4, 1e-3, 1e-2}
    f3 = expand(load_sweep(CONFIGS / "sweep-fig3cd.toml", seeds=[1]))
    assert {s.exp.method for s in f3} == {"sdns-mix"}
    assert sorted({s.exp.loss.alpha for s in f3}) == pytest.approx([i / 10 for i in range(10)])
    f6 = expand(load_sweep(CONFIGS / "sweep-fig6.toml", quick=True))
    assert {s.exp.model.name for s in f6} == {"ngcf"}
    assert {s.exp.method for s in f6} == {"rns", "dns", "mixgcf", "sdns"}


class Crash(Exception):
    pass


def test_interrupted_sweep_resumes_without_redoing_finished_runs(tmp_path, tiny_folder, monkeypatch):
    f = write_sweep(tmp_path / "s.toml", tiny_folder, tmp_path / "o",
                    "[grid]\nlr = [0.01, 0.02]\n[[variants]]\npreset = \"dns\"\n")
    sw = load_sweep(f)
    specs = expand(sw)
    assert len(specs) == 2
    real_fit = train_mod.fit
    calls = []

    def fit(exp, *a, crash_at=None, **kw):
        calls.append((exp.train.lr, kw.get("resume")))
        if crash_at is not None:
            def on_epoch(row):
                if row["epoch"] == crash_at:
                    raise Crash()
            kw["on_epoch"] = on_epoch
        return real_fit(exp, *a, **kw)

    # first pass: the second run is killed after its first epoch
    monkeypatch.setattr(train_mod, "fit", lambda exp, *a, **kw: fit(
        exp, *a, crash_at=1 if exp.train.lr == 0.02 else None, **kw))
    with pytest.raises(Crash):
        run_sweep(sw, specs, log=lambda m: None)
    rows = read_rows(sw.out / "results.jsonl")
    assert [r["run"] for r in rows] == [f"runs/{specs[0].name}"]
    assert [status(sw, s) for s in specs] == ["done", "resumable"]
    # heavy files of the finished run are gone; the row carries what the report needs
    done_dir = sw.out / "runs" / specs[0].name
    assert not (done_dir / "state.pt").exists() and not (done_dir / "model.pt").exists()
    assert {"config.json", "history.jsonl", "result.json", "sweep.json"} <= {
        p.name for p in done_dir.iterdir()}
    r = rows[0]
    assert r["study"] == "t" and r["seed"] == 1 and r["method"] == "dns"
    assert r["config"]["lr"] == 0.01 and r["point"] == {"lr": 0.01, "preset": "dns"}
    assert {"best_epoch", "valid", "test", "seconds", "dataset"} <= set(r)
    first_hist = (done_dir / "history.jsonl").read_text()

    # second pass: the finished run is skipped, the interrupted one resumes from its state.pt
    calls.clear()
    monkeypatch.setattr(train_mod, "fit", fit)
    new = run_sweep(sw, specs, log=lambda m: None)
    assert calls == [(0.02, True)]
    assert [x["run"] for x in new] == [f"runs/{specs[1].name}"]
    assert (done_dir / "history.jsonl").read_text() == first_hist
    hist = (sw.out / "runs" / specs[1].name / "history.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in hist] == [1, 2]

    # third pass: nothing to do, no duplicate rows
    calls.clear()
    assert run_sweep(sw, specs, log=lambda m: None) == [] and calls == []
    assert len(read_rows(sw.out / "results.jsonl")) == 2

    # killed between result.json and its row: the row is restored without training
    lines = (sw.out / "results.jsonl").read_text().splitlines()
    (sw.out / "results.jsonl").write_text(lines[0] + "\n")
    new = run_sweep(sw, specs, log=lambda m: None)
    assert calls == [] and [x["run"] for x in new] == [f"runs/{specs[1].name}"]


def test_a_torn_last_row_is_cut_and_written_again(tmp_path, tiny_folder):
    """A row torn by a kill mid-write is cut before the next append (appending after it would
    merge two lines into one damaged row that stops every later read); its finished run's
    row is written again from the run directory; a complete last row lacking its newline is
    kept and terminated."""
    f = write_sweep(tmp_path / "s.toml", tiny_folder, tmp_path / "o",
                    "[grid]\nlr = [0.01, 0.02]\n")
    sw = load_sweep(f)
    specs = expand(sw)
    run_sweep(sw, specs[:1], log=lambda m: None)
    res = sw.out / "results.jsonl"
    good = res.read_text()
    res.write_text(good[: len(good) // 2])  # the only row, torn
    logs = []
    run_sweep(sw, specs, log=logs.append)
    rows = read_rows(res)
    assert sorted(r["run"] for r in rows) == sorted(f"runs/{s.name}" for s in specs)
    assert any("cut a torn last line" in m for m in logs)
    res.write_text(res.read_text().rstrip("\n"))  # complete rows, the last without its newline
    before = read_rows(res)
    run_sweep(sw, specs, log=lambda m: None)
    assert read_rows(res) == before and res.read_text().endswith("\n")


def test_diverged_run_is_recorded_and_skipped(tmp_path, tiny_folder, monkeypatch):
    f = write_sweep(tmp_path / "s.toml", tiny_folder, tmp_path / "o")
    sw = load_sweep(f)
    specs = expand(sw)

    def boom(exp, *a, **kw):
        raise train_mod.TrainingDiverged("epoch 1: the loss is nan")

    monkeypatch.setattr(train_mod, "fit", boom)
    (row,) = run_sweep(sw, specs, log=lambda m: None)
    assert row["status"] == "diverged" and "nan" in row["error"]
    assert status(sw, specs[0]) == "failed"
    assert run_sweep(sw, specs, log=lambda m: None) == []  # skipped, not retried
    monkeypatch.undo()
    (row,) = run_sweep(sw, specs, log=lambda m: None, retry_failed=True)
    assert row["status"] == "ok" and status(sw, specs[0]) == "done"


def test_cli_sweep_dry_run_and_two_stage_best(tmp_path, tiny_folder, capsys):
    f = write_sweep(tmp_path / "s.toml", tiny_folder, tmp_path / "o",
                    "[grid]\nlr = [0.01, 0.02]\n[[variants]]\npreset = \"rns\"\n"
                    "[[variants]]\npreset = \"sdns\"\n", "[1, 2]")
    assert main(["sweep", str(f), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "8 runs" in out and out.count("\n  pending ") == 8
    assert main(["sweep", str(f), "--seeds", "1"]) == 0
    assert len(read_rows(tmp_path / "o" / "results.jsonl")) == 4
    out = capsys.readouterr().out  # a line as each run starts, not only when it ends
    assert out.count(": training (per-epoch lines: --verbose, or ") == 4
    # stage 2: seed 2 for the point chosen on validation per method only
    assert main(["sweep", str(f), "--seeds", "2", "--best"]) == 0
    rows = read_rows(tmp_path / "o" / "results.jsonl")
    assert len(rows) == 6 and sorted(r["method"] for r in rows if r["seed"] == 2) == ["rns", "sdns"]
    assert main(["sweep", str(f), "--best", "--dry-run"]) == 0
    assert capsys.readouterr().out.count("\n  done ") == 4
    assert main(["sweep", str(tmp_path / "nope.toml")]) == 2


@pytest.mark.parametrize("study", [
    "fig3cd",  # by default one study (1 run); all six with -m slow (about a minute, 18 runs)
    *(pytest.param(s, marks=pytest.mark.slow)
      for s in ("table2", "fig3ab", "fig4", "fig5", "fig6"))])
def test_every_shipped_study_runs_quick_end_to_end(study, tmp_path, capsys):
    """--quick: synthetic-small, 2 epochs, first grid values, one seed; then the report."""
    out = tmp_path / study
    f = CONFIGS / f"sweep-{study}.toml"
    assert main(["sweep", str(f), "--quick", "--out", str(out), "--set", "device=cpu"]) == 0
    rows = read_rows(out / "results.jsonl")
    assert rows and all(r["status"] == "ok" and r["study"] == study for r in rows)
    assert len(rows) == len(expand(load_sweep(f, quick=True)))
    assert main(["report", str(out)]) == 0
    assert (out / "report.md").exists()


def test_sigterm_mid_sweep_then_rerun_resumes(tmp_path, tiny_folder, capsys):
    """The CLI path: a sweep killed by SIGTERM in its second run, then the same command again."""
    import os
    import signal
    import subprocess
    import sys
    import time

    f = write_sweep(tmp_path / "s.toml", tiny_folder, tmp_path / "o",
                    "[grid]\nlr = [0.01, 0.02]\n[[variants]]\npreset = \"dns\"\n")
    f.write_text(f.read_text().replace("epochs = 2", "epochs = 24").replace("eval_every = 1",
                                                                      "eval_every = 4"))
    specs = expand(load_sweep(f))
    first, second = (tmp_path / "o" / "runs" / s.name for s in specs)
    proc = subprocess.Popen([sys.executable, "-m", "softbpr", "sweep", str(f)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    hist = second / "history.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline:
        if hist.exists() and len(hist.read_text().splitlines()) >= 2:
            break
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait() == 128 + signal.SIGTERM
    assert not (second / "result.json").exists(), "the run finished before it could be killed"
    assert (second / "state.pt").exists() and (first / "result.json").exists()
    assert len(read_rows(tmp_path / "o" / "results.jsonl")) == 1
    done = (first / "result.json").stat().st_mtime_ns

    assert main(["sweep", str(f)]) == 0
    out = capsys.readouterr().out
    assert "done, skipped" in out and "(resumed)" in out
    assert (first / "result.json").stat().st_mtime_ns == done  # not redone
    epochs = [json.loads(x)["epoch"] for x in hist.read_text().splitlines()]
    assert epochs == list(range(1, 25))
    rows = read_rows(tmp_path / "o" / "results.jsonl")
    assert [r["run"] for r in rows] == [f"runs/{s.name}" for s in specs]


def test_shards_split_the_runs_and_jobs_run_them_all(tmp_path, tiny_folder, capsys):
    """--shard K/N takes every N-th run from the K-th; --jobs N runs the N shards at once and
    together they do each run exactly once, appending to one results.jsonl."""
    f = write_sweep(tmp_path / "s.toml", tiny_folder, tmp_path / "o", GRID)
    names = [s.name for s in expand(load_sweep(f))]
    assert len(names) == 6
    assert main(["sweep", str(f), "--shard", "2/3", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "2 runs" in out and names[1] in out and names[4] in out and names[0] not in out
    assert main(["sweep", str(f), "--shard", "4/3"]) == 2
    assert main(["sweep", str(f), "--jobs", "3"]) == 0
    out = capsys.readouterr().out
    assert "[job 1]" in out and "[job 3]" in out and "exit codes [0, 0, 0]" in out
    rows = read_rows(tmp_path / "o" / "results.jsonl")
    assert sorted(r["run"] for r in rows) == sorted(f"runs/{n}" for n in names)
    assert all(r["status"] == "ok" and r["stop_reason"] == "epochs" for r in rows)


def test_shard_command_passes_every_option_explicitly(tmp_path):
    cmd = shard_command(tmp_path / "s.toml", 2, 3, quick=True, seeds=[1, 2],
                        overrides=["device=cpu", "lr=0.01"], only=["preset=sdns"],
                        out=tmp_path / "o", best=True, retry_failed=True, verbose=True,
                        budget_minutes=1.5)
    assert cmd[1:] == ["-m", "softbpr", "sweep", str(tmp_path / "s.toml"), "--quick",
                       "--seeds", "1,2", "--set", "device=cpu", "--set", "lr=0.01", "--only",
                       "preset=sdns", "--out", str(tmp_path / "o"), "--best", "--retry-failed",
                       "--verbose", "--budget", "1.5", "--shard", "2/3"]
    assert shard_command("s.toml", 1, 2)[3:] == ["sweep", "s.toml", "--shard", "1/2"]


def test_run_jobs_runs_each_shard_in_a_subprocess(tmp_path, tiny_folder):
    f = write_sweep(tmp_path / "s.toml", tiny_folder, tmp_path / "o", GRID)
    lines: list[str] = []
    code = run_jobs(f, 2, tmp_path / "o" / "results.jsonl", log=lines.append,
                    only=["preset=rns"], overrides=["epochs=1"])
    assert code == 0
    assert any(x.startswith("[job 1] ") for x in lines)
    assert any(x.startswith("[job 2] ") for x in lines)
    assert "exit codes [0, 0]" in lines[-1]
    rows = read_rows(tmp_path / "o" / "results.jsonl")
    assert sorted(r["point"]["lr"] for r in rows) == [0.005, 0.01]  # one run per shard
    assert all(r["method"] == "rns" and r["epochs"] == 1 for r in rows)


def test_budget_caps_each_run_and_leaves_the_rest_pending(tmp_path, tiny_folder):
    f = write_sweep(tmp_path / "s.toml", tiny_folder, tmp_path / "o", GRID)
    sw = load_sweep(f)
    specs = expand(sw)
    assert run_sweep(sw, specs, log=lambda m: None, budget_minutes=0.2) == []  # < 0.5 min left
    assert all(status(sw, s) == "pending" for s in specs)
    rows = run_sweep(sw, specs[:2], log=lambda m: None, budget_minutes=30)
    assert len(rows) == 2
    for s in specs[:2]:
        cfg = json.loads((tmp_path / "o" / "runs" / s.name / "config.json").read_text())
        assert 29 < cfg["train"]["time_limit"] <= 30  # capped at what was left of the budget


def test_budget_does_not_stop_a_resumed_run_for_its_earlier_sessions(tmp_path, tiny_folder,
                                                                      monkeypatch):
    """A resumed run's time_limit counts the time of its earlier sessions (state.pt
    "elapsed"): the sweep budget's cap must add it, or a run that once trained longer than
    the budget would stop after one more epoch."""
    import torch

    f = write_sweep(tmp_path / "s.toml", tiny_folder, tmp_path / "o",
                    "[grid]\nlr = [0.01]\n[[variants]]\npreset = \"dns\"\n")
    f.write_text(f.read_text().replace("epochs = 2", "epochs = 4"))
    sw = load_sweep(f)
    specs = expand(sw)
    real_fit = train_mod.fit

    def crash_after_1(exp, *a, **kw):
        def on_epoch(row):
            if row["epoch"] == 1:
                raise Crash()
        return real_fit(exp, *a, on_epoch=on_epoch, **kw)

    monkeypatch.setattr(train_mod, "fit", crash_after_1)
    with pytest.raises(Crash):
        run_sweep(sw, specs, log=lambda m: None)
    state = sw.out / "runs" / specs[0].name / "state.pt"
    st = torch.load(state, map_location="cpu", weights_only=False)
    st["elapsed"] = 3600.0  # as if its first session had trained for an hour
    torch.save(st, state)
    monkeypatch.setattr(train_mod, "fit", real_fit)
    rows = run_sweep(sw, specs, log=lambda m: None, budget_minutes=30)
    assert len(rows) == 1 and rows[0]["stop_reason"] == "epochs" and rows[0]["epochs"] == 4
