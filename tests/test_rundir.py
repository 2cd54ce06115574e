"""RunDir: the run-directory format (file names, atomic writes, status, history, naming)."""

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import torch

from softbpr.config import Experiment, with_updates
from softbpr.rundir import (
    HEAVY,
    RunDir,
    atomic_write,
    default_name,
    find_runs,
    write_json,
)


def _exp():
    return with_updates(Experiment(), data="synthetic-small", preset="sdns", seed=7, dim=8)


def test_create_writes_config_and_empty_history(tmp_path):
    rd = RunDir(tmp_path / "a" / "run")
    assert not rd.exists() and rd.is_empty() and rd.status() == "pending"
    exp = _exp()
    rd.create({**exp.to_dict(), "device": "cpu"})
    assert rd.is_run() and not rd.is_finished() and not rd.has_state()
    assert rd.read_config()["device"] == "cpu"
    assert rd.history_path.read_text() == ""
    assert rd.experiment() == exp  # extra keys (device) are not part of the experiment


@pytest.mark.parametrize("cfg,msg", [
    ({"lr": 0.5, "epochs": 1}, r"not a run config .*unknown keys \['epochs', 'lr'\]"),
    ([1, 2], "not a run config"),
    ({}, "not a run config"),
    ("train.lrr", "lrr"),
    ("model=5", "must be a mapping"),
    ("train.lr=-1", r"train.lr must be > 0"),
])
def test_experiment_of_an_edited_config_names_the_file(tmp_path, cfg, msg):
    """A config.json without the section tables, with unknown keys or bad values is refused
    naming the file (it used to rebuild a default experiment and train that on --resume)."""
    from softbpr.data import DataError

    rd = RunDir(tmp_path / "run")
    rd.create({**_exp().to_dict(), "device": "cpu"})
    if isinstance(cfg, str):
        c = rd.read_config()
        key, _, val = cfg.partition("=")
        sec, _, k = key.partition(".")
        if k:
            c[sec][k] = float(val) if val else 1
        else:
            c[sec] = int(val)
        cfg = c
    rd.config_path.write_text(json.dumps(cfg))
    with pytest.raises(DataError, match=rf"config\.json: .*{msg}"):
        rd.experiment()


@pytest.mark.parametrize("text", ['{"best_epoch": 3', "[1, 2]", "\udcff"])
def test_a_damaged_result_json_names_the_file(tmp_path, text):
    from softbpr.data import DataError

    rd = RunDir(tmp_path / "run")
    rd.create({**_exp().to_dict(), "device": "cpu"})
    rd.result_path.write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(DataError, match=r"result\.json: damaged"):
        rd.read_result()


def test_create_refuses_a_non_empty_folder_and_overwrite_clears_training_state(tmp_path):
    rd = RunDir(tmp_path / "run")
    rd.create({"x": 1})
    rd.append_history({"epoch": 1})
    for f in HEAVY:
        (rd.path / f).write_text("old")
    rd.write_result({"best_epoch": 1})
    rd.write_failed({"error": "nan"})
    rd.write_sweep_info({"point_id": "p"})
    (rd.path / ".state.pt.abc.tmp").write_text("torn")
    with pytest.raises(FileExistsError, match="--overwrite"):
        rd.create({"x": 2})
    assert rd.read_config() == {"x": 1}
    rd.create({"x": 2}, overwrite=True)
    assert rd.read_config() == {"x": 2}
    assert rd.read_history() == [] and rd.read_result() is None and rd.read_failed() is None
    assert not any((rd.path / f).exists() for f in HEAVY)
    assert not list(rd.path.glob(".*.tmp"))
    assert rd.read_sweep_info() == {"point_id": "p"}  # not training state: kept
    assert rd.status() == "pending"


def test_status(tmp_path):
    rd = RunDir(tmp_path / "r")
    assert rd.status() == "pending"
    rd.create({})
    assert rd.status() == "pending"
    rd.save_state({"epoch": 3, "t": torch.ones(2)})
    assert rd.status() == "resumable"
    assert rd.load_state()["epoch"] == 3
    rd.write_failed({"error": "nan"})
    assert rd.status() == "failed"
    rd.clear_failed()
    rd.write_result({"best_epoch": 3})
    assert rd.status() == "done" and rd.read_result() == {"best_epoch": 3}
    # a state without config.json is not a run that can be resumed
    other = RunDir(tmp_path / "s")
    other.path.mkdir()
    other.save_state({"epoch": 1})
    assert other.status() == "pending"


def test_load_state_without_one_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="cannot resume"):
        RunDir(tmp_path).load_state()


def test_history_append_read_torn_line_and_truncate(tmp_path):
    rd = RunDir(tmp_path).create({})
    for e in (1, 2, 3):
        rd.append_history({"epoch": e, "loss": 1.0 / e})
    assert [r["epoch"] for r in rd.read_history()] == [1, 2, 3] and rd.n_epochs() == 3
    with open(rd.history_path, "a") as fh:
        fh.write('{"epoch": 4, "lo')  # killed mid-write
    assert [r["epoch"] for r in rd.read_history()] == [1, 2, 3]
    kept = rd.truncate_history(3)
    assert [r["epoch"] for r in kept] == [1, 2]
    assert [json.loads(x)["epoch"] for x in rd.history_path.read_text().splitlines()] == [1, 2]
    rd.history_path.write_text('{"epoch": 1}\nnot json\n{"epoch": 3}\n')
    with pytest.raises(ValueError, match="line 2"):
        rd.read_history()


def test_atomic_write_keeps_the_target_on_failure(tmp_path):
    p = tmp_path / "f.json"
    write_json(p, {"a": 1})

    def boom(tmp):
        with open(tmp, "w") as fh:
            fh.write("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(p, boom)
    assert json.loads(p.read_text()) == {"a": 1}
    assert sorted(x.name for x in tmp_path.iterdir()) == ["f.json"]


@pytest.mark.skipif(not hasattr(signal, "SIGTERM") or os.name == "nt", reason="POSIX signals")
def test_a_signal_during_a_write_waits_for_the_rename(tmp_path):
    """SIGTERM unwinds a command as an exception (cli.main); landing mid-write it must neither
    leave a temp file nor a half file: it is held back until the rename is done, also while
    another thread runs (as torch's do), which a signal sent to the process may land on."""
    class Stop(Exception):
        pass

    def stop(signum, frame):
        raise Stop

    p = tmp_path / "f.json"
    seen = []

    def w(tmp):
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while the temp file exists
        for _ in range(1000):  # a pending handler would run within these bytecodes
            seen.append(1)
        with open(tmp, "w") as fh:
            fh.write("{}")

    other = threading.Thread(target=time.sleep, args=(0.3,))
    other.start()
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        with pytest.raises(Stop):
            atomic_write(p, w)
    finally:
        signal.signal(signal.SIGTERM, previous)
        other.join()
    assert len(seen) == 1000 and p.read_text() == "{}"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["f.json"]


@pytest.mark.skipif(os.name == "nt", reason="POSIX signals")
def test_a_default_sigterm_mid_write_ends_the_process_after_the_rename(tmp_path):
    """With SIGTERM's default action (no handler: a library user's process), the signal is
    re-sent once the file is complete: the process still dies of it, leaving no temp file, and
    the handlers are as before for a signal after the write."""
    import subprocess
    import sys

    code = f"""
import os, signal
from softbpr.rundir import atomic_write
assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
def w(tmp):
    os.kill(os.getpid(), signal.SIGTERM)
    open(tmp, "w").write("done")
atomic_write({str(tmp_path / "f.txt")!r}, w)
print("survived")
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       check=False)
    assert p.returncode == -signal.SIGTERM and "survived" not in p.stdout, p.stderr
    assert sorted(x.name for x in tmp_path.iterdir()) == ["f.txt"]
    assert (tmp_path / "f.txt").read_text() == "done"


def test_handlers_are_restored_after_a_write(tmp_path):
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    written = []

    def w(tmp):
        assert signal.getsignal(signal.SIGINT) is not before[signal.SIGINT]  # held meanwhile
        written.append(Path(tmp).write_text("x"))

    atomic_write(tmp_path / "f", w)
    assert written and {s: signal.getsignal(s) for s in before} == before


def test_clear_temp_and_remove_heavy(tmp_path):
    rd = RunDir(tmp_path).create({})
    (tmp_path / ".model.pt.x1.tmp").write_text("")
    (tmp_path / "keep.tmp").write_text("")  # not a hidden temp file of ours
    assert [p.name for p in rd.clear_temp()] == [".model.pt.x1.tmp"]
    assert (tmp_path / "keep.tmp").exists()
    for f in HEAVY:
        (tmp_path / f).write_text("x")
    rd.remove_heavy(keep=("model.pt",))
    assert sorted(f for f in HEAVY if (tmp_path / f).exists()) == ["model.pt"]


def test_default_name():
    exp = _exp()
    t = time.mktime((2026, 3, 4, 5, 6, 7, 0, 0, -1))
    assert default_name(exp, t) == "synthetic-small-lightgcn-sdns-s7-20260304-050607"


def test_find_runs(tmp_path):
    a = RunDir(tmp_path / "s" / "runs" / "a").create({})
    b = RunDir(tmp_path / "s" / "runs" / "b").create({})
    (tmp_path / "s" / "runs" / "c").mkdir()  # no config.json: not a run
    (tmp_path / "s" / "runs" / "c" / "history.jsonl").write_text("")
    res = tmp_path / "s" / "results.jsonl"
    res.write_text("")
    assert find_runs(tmp_path / "s") == [a, b]
    assert find_runs([res, a.path]) == [a, b]  # a file stands for its folder; no duplicates
    with pytest.raises(FileNotFoundError):
        find_runs(tmp_path / "missing")


def test_run_of_row_finds_a_rows_run_in_the_first_folder_that_has_it(tmp_path):
    from softbpr.rundir import run_of_row
    a, b = tmp_path / "a", tmp_path / "b"
    (a / "runs" / "x").mkdir(parents=True)
    (b / "runs" / "x").mkdir(parents=True)
    (b / "runs" / "y").mkdir(parents=True)
    assert run_of_row([a, b], "runs/x").path == a / "runs" / "x"  # the row's own form
    assert run_of_row([a, b], "x").path == a / "runs" / "x"       # an older bare name
    assert run_of_row([a, b], "y").path == b / "runs" / "y"
    assert run_of_row([a, b], "z") is None
