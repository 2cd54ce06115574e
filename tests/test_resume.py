"""Checkpoint/resume: an interrupted run, resumed, ends exactly like an uninterrupted one."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from softbpr.config import load
from softbpr.trainer import fit

ARGS = ["--data", "synthetic-small", "--epochs", "10", "--eval-every", "2", "--patience", "0",
        "--dim", "8", "--layers", "2", "--batch-size", "1024", "--device", "cpu", "--quiet",
        "--preset", "sdns"]


class Crash(Exception):
    pass


TOY = {"dim": 8, "layers": 2, "batch_size": 16, "eval_every": 2, "patience": 0, "lr": 0.02,
       "topk": "2,5", "metric": "recall@5", "device": "cpu"}


def crash_and_resume(exp, split, tmp_path, at: int):
    """(uninterrupted run, run crashed after epoch `at` then resumed) of the same experiment."""
    quiet = {"log": lambda m: None, "progress": False}
    ref = fit(exp, split=split, out_dir=tmp_path / "ref", **quiet)

    def crash(row):
        if row["epoch"] == at:
            raise Crash()

    with pytest.raises(Crash):
        fit(exp, split=split, out_dir=tmp_path / "cut", on_epoch=crash, **quiet)
    assert torch.load(tmp_path / "cut" / "state.pt", weights_only=False)["epoch"] == at
    return ref, fit(exp, split=split, out_dir=tmp_path / "cut", resume=True, **quiet)


def test_resume_in_process_matches_uninterrupted(blocks, tmp_path):
    exp = load(overrides={**TOY, "epochs": 9, "preset": "dns"})
    ref, res = crash_and_resume(exp, blocks, tmp_path, at=5)
    # rows before the crash come back from history.jsonl (rounded to 6 digits)
    assert [round(r["loss"], 6) for r in res.history] == [round(r["loss"], 6) for r in ref.history]
    assert res.history[-1]["loss"] == ref.history[-1]["loss"]
    assert res.test == ref.test and res.best_epoch == ref.best_epoch
    for a, b in zip(res.model.parameters(), ref.model.parameters()):
        assert torch.equal(a, b)
    rows = (tmp_path / "cut" / "history.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in rows] == list(range(1, 10))


def _run(args, **kw):
    return subprocess.run([sys.executable, "-m", "softbpr", "train", *args], capture_output=True,
                          text=True, **kw)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    p = _run([*ARGS, "--out", str(out)])
    assert p.returncode == 0, p.stderr
    return json.loads((out / "result.json").read_text())


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_run_resumes_to_the_same_result(tmp_path, reference, sig):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "softbpr", "train", *ARGS, "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    hist = out / "history.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline:
        if hist.exists() and len(hist.read_text().splitlines()) >= 3:
            break
        time.sleep(0.01)
    os.kill(proc.pid, sig)
    proc.wait()
    assert not (out / "result.json").exists(), "the run finished before it could be killed"
    # whatever moment it died at, the files on disk are complete
    st = torch.load(out / "state.pt", weights_only=False)
    assert 1 <= st["epoch"] < 10
    torch.load(out / "model.pt", weights_only=True)
    if sig == signal.SIGTERM:  # unwound cleanly: no temp file left behind
        assert not [f for f in os.listdir(out) if f.endswith(".tmp")]
    p = _run(["--resume", str(out), "--quiet"])
    assert p.returncode == 0, p.stderr
    got = json.loads((out / "result.json").read_text())
    assert got["test"] == reference["test"] and got["best_epoch"] == reference["best_epoch"]
    epochs = [json.loads(x)["epoch"] for x in (out / "history.jsonl").read_text().splitlines()]
    assert epochs == list(range(1, 11))
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]


def test_resume_refuses_flags_and_finished_runs(tmp_path, reference):
    from softbpr.cli import main

    assert main(["train", "--resume", str(tmp_path), "--lr", "0.1"]) == 2
    out = tmp_path / "done"
    out.mkdir()
    (out / "config.json").write_text("{}")
    (out / "result.json").write_text("{}")
    assert main(["train", "--resume", str(out)]) == 5  # cli.EXIT_FILE


@pytest.mark.parametrize("preset", ["irgan", "mixgcf"])
def test_resume_with_stateful_samplers(blocks, tmp_path, preset):
    """A GAN generator (its weights, optimiser and negative cache) survives a resume."""
    extra = {"gen_pretrain_epochs": 1} if preset == "irgan" else {}
    exp = load(overrides={**TOY, "epochs": 5, "preset": preset, **extra})
    ref, res = crash_and_resume(exp, blocks, tmp_path, at=3)
    assert res.history[-1]["loss"] == ref.history[-1]["loss"]
    assert res.test == ref.test


def test_state_saved_before_a_new_option_resumes(blocks, tmp_path):
    """A state.pt written by an older softbpr lacks the config fields added since (here
    loss.correction): at their defaults they do not block the resume; a field that differs
    still does."""
    exp = load(overrides={**TOY, "epochs": 6, "preset": "dns"})
    quiet = {"log": lambda m: None, "progress": False}

    def crash(row):
        if row["epoch"] == 3:
            raise Crash()

    ref = fit(exp, split=blocks, out_dir=tmp_path / "ref", **quiet)
    with pytest.raises(Crash):
        fit(exp, split=blocks, out_dir=tmp_path / "cut", on_epoch=crash, **quiet)
    path = tmp_path / "cut" / "state.pt"
    st = torch.load(path, weights_only=False)
    del st["fingerprint"]["config"]["loss"]["correction"]  # as written before the option
    torch.save(st, path)
    res = fit(exp, split=blocks, out_dir=tmp_path / "cut", resume=True, **quiet)
    assert res.test == ref.test
    with pytest.raises(Crash):
        fit(exp, split=blocks, out_dir=tmp_path / "cut2", on_epoch=crash, **quiet)
    path = tmp_path / "cut2" / "state.pt"
    st = torch.load(path, weights_only=False)
    st["fingerprint"]["config"]["train"]["lr"] = 0.5
    del st["fingerprint"]["config"]["loss"]["correction"]
    torch.save(st, path)
    with pytest.raises(ValueError, match=r"train\.lr"):
        fit(exp, split=blocks, out_dir=tmp_path / "cut2", resume=True, **quiet)


def test_state_without_a_field_that_is_now_set_is_refused(blocks, tmp_path):
    """The fill-in is for fields at their default only: a state saved without loss.correction
    resumed by a run with correction = logq is a different run and is refused."""
    exp = load(overrides={**TOY, "epochs": 4, "preset": "sl-batch-logq"})
    quiet = {"log": lambda m: None, "progress": False}

    def crash(row):
        if row["epoch"] == 2:
            raise Crash()

    with pytest.raises(Crash):
        fit(exp, split=blocks, out_dir=tmp_path / "cut", on_epoch=crash, **quiet)
    path = tmp_path / "cut" / "state.pt"
    st = torch.load(path, weights_only=False)
    del st["fingerprint"]["config"]["loss"]["correction"]
    torch.save(st, path)
    with pytest.raises(ValueError, match=r"loss\.correction"):
        fit(exp, split=blocks, out_dir=tmp_path / "cut", resume=True, **quiet)
