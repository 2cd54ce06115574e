"""The CLI end to end in a temp dir: train, then evaluate from the checkpoint alone."""

import json
import subprocess
import sys

import numpy as np
import pytest

from softbpr.cli import EXIT_DATA, EXIT_FILE, EXIT_USAGE, main

FAST = ["--data", "synthetic-small", "--epochs", "4", "--eval-every", "2", "--dim", "16",
        "--batch-size", "1024", "--device", "cpu", "--quiet"]


def test_train_then_evaluate(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *FAST, "--preset", "sdns", "--alpha", "0.8", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "test recall@50" in text and "ndcg@50" in text
    for f in ("config.json", "history.jsonl", "result.json", "model.pt", "embeddings.npz"):
        assert (out / f).exists(), f
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["loss"]["name"] == "soft_bpr" and cfg["loss"]["alpha"] == 0.8
    assert cfg["method"] == "sdns"
    rows = [json.loads(x) for x in (out / "history.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert {"loss", "train_seconds"} <= set(rows[0]) and "valid" not in rows[0]
    assert {"eval_seconds", "valid"} <= set(rows[1])
    assert set(rows[1]["valid"]) == {"recall@20", "recall@50", "ndcg@20", "ndcg@50"}
    res = json.loads((out / "result.json").read_text())
    assert {"best_epoch", "valid", "test", "seconds"} <= set(res)
    emb = np.load(out / "embeddings.npz")
    assert emb["user_embeddings"].shape == (len(emb["user_ids"]), 16)
    assert emb["item_embeddings"].shape == (len(emb["item_ids"]), 16)

    # evaluate in a fresh process: the checkpoint alone must suffice
    p = subprocess.run([sys.executable, "-m", "softbpr", "evaluate", str(out), "--device", "cpu"],
                       capture_output=True, text=True, check=True)
    again = json.loads(p.stdout[:p.stdout.rindex("}") + 1])
    for split in ("valid", "test"):
        for k, v in res[split].items():
            assert again[split][k] == pytest.approx(v, abs=1e-6)
    # scores are dot products of the saved embeddings: recompute one user's top item
    u, it = emb["user_embeddings"], emb["item_embeddings"]
    assert np.isfinite(u @ it.T).all()


def test_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["train", *FAST, "--out", str(out)]) == EXIT_FILE
    assert "not empty" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"
    assert main(["train", *FAST, "--epochs", "1", "--out", str(out), "--overwrite"]) == 0
    assert (out / "result.json").exists() and (out / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize("args,msg,code", [
    (["--alpha", "1.5"], "alpha must be in", EXIT_USAGE),
    (["--pool-size", "0"], "pool_size", EXIT_USAGE),
    (["--preset", "nope"], "unknown preset", EXIT_USAGE),
    (["--data", "/nonexistent/x.csv"], "no such file", EXIT_DATA),
])
def test_errors_are_one_line(tmp_path, capsys, args, msg, code):
    assert main(["train", *FAST, *args, "--out", str(tmp_path / "r")]) == code
    err = capsys.readouterr().err.strip()
    assert msg in err and len(err.splitlines()) == 1


def test_config_file_unknown_key(tmp_path, capsys):
    c = tmp_path / "c.toml"
    c.write_text("[sampler]\npoolsize = 8\n")
    assert main(["train", "--config", str(c), "--out", str(tmp_path / "r")]) == 2
    assert "sampler.poolsize" in capsys.readouterr().err


def test_malformed_data_file(tmp_path, capsys):
    d = tmp_path / "lg"
    d.mkdir()
    (d / "train.txt").write_text("0 1 2\n1 2 -3\n")
    (d / "test.txt").write_text("0 3\n")
    assert main(["train", *FAST[2:], "--data", str(d), "--out", str(tmp_path / "r")]) == EXIT_DATA
    err = capsys.readouterr().err
    assert "train.txt:2: a negative id" in err


def test_busy_cpu_warning(monkeypatch):
    import os

    import torch

    from softbpr.seeding import busy_cpu_note

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (2.1, 2.0, 2.0))
    assert "OMP_NUM_THREADS" in busy_cpu_note()
    monkeypatch.setattr(os, "getloadavg", lambda: (0.2, 0.2, 0.2))
    assert busy_cpu_note() is None  # idle machine
    monkeypatch.setattr(os, "getloadavg", lambda: (2.1, 2.0, 2.0))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert busy_cpu_note() is None  # the user chose the threads


@pytest.mark.parametrize("argv,msg,code", [
    (["train", "--epochs", "many"], "argument --epochs: invalid int value: 'many'", EXIT_USAGE),
    (["train", "--no-such-flag"],
     "unrecognized arguments: --no-such-flag (see 'softbpr train --help')", EXIT_USAGE),
    (["data", "prepare", "x.csv", "--out", "o", "--kcore", "3"],  # train's flag, not prepare's
     "unrecognized arguments: --kcore 3 (see 'softbpr data prepare --help')", EXIT_USAGE),
    (["sweep", "s.toml", "--shard", "4/3"], "argument --shard: must be K/N", EXIT_USAGE),
    (["recommend", "run", "--user", "1", "--users-file", "/nonexistent/users.txt"],
     "/nonexistent/users.txt", EXIT_FILE),
    (["nope"], "invalid choice: 'nope'", EXIT_USAGE),
])
def test_usage_and_environment_errors_are_one_line(argv, msg, code, capsys):
    assert main(argv) == code
    cap = capsys.readouterr()
    err = cap.err.strip()
    assert err.startswith("softbpr: error: ") and msg in err and len(err.splitlines()) == 1
    assert cap.out == ""


def test_unexpected_errors_are_bugs_with_a_traceback(monkeypatch, capsys):
    import softbpr.recommend

    def broken(*a, **k):
        raise ZeroDivisionError("oops")

    monkeypatch.setattr(softbpr.recommend, "load_recommender", broken)
    assert main(["recommend", "run", "--user", "1"]) == 70
    err = capsys.readouterr().err
    assert "Traceback" in err and "ZeroDivisionError: oops" in err
    assert err.strip().splitlines()[-1].startswith("softbpr: error: unexpected ZeroDivisionError")
    assert "this is a bug" in err


def test_sigterm_unwinds_during_a_command_only(monkeypatch, capsys):
    import os
    import signal

    import softbpr.recommend

    seen = {}

    def terminated(*a, **k):
        seen["handler"] = signal.getsignal(signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)  # as `kill PID` would
        raise AssertionError("not reached")

    monkeypatch.setattr(softbpr.recommend, "load_recommender", terminated)
    before = signal.getsignal(signal.SIGTERM)
    assert main(["recommend", "run", "--user", "1"]) == 128 + signal.SIGTERM
    assert "softbpr: terminated (SIGTERM)" in capsys.readouterr().err
    assert seen["handler"] is not before and signal.getsignal(signal.SIGTERM) is before


def test_docstring_lists_every_command():
    import softbpr.cli
    from softbpr.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name, parser in sub.choices.items():
        assert f"    {name}" in softbpr.cli.__doc__, name
        nested = [a for a in parser._actions if a.dest == "data_command"]
        for inner in (nested[0].choices if nested else ()):
            assert inner in softbpr.cli.__doc__, f"{name} {inner}"


def test_python_dash_m_and_version():
    p = subprocess.run([sys.executable, "-m", "softbpr", "--version"], capture_output=True,
                       text=True, check=True)
    assert p.stdout.startswith("softbpr ")


@pytest.mark.parametrize("exc,code,text", [
    (PermissionError(13, "Permission denied", "d/test.txt"), EXIT_FILE,
     "permission denied, d/test.txt; check its permissions or choose another path"),
    (IsADirectoryError(21, "Is a directory", "conf"), EXIT_FILE,
     "is a directory, conf; give a file, not a folder"),
    (OSError(28, "No space left on device", "runs/x/state.pt"), EXIT_FILE,
     "no space left on device, runs/x/state.pt; the disk is full"),
    (FileExistsError("runs/x exists and is not empty (--out); ..."), EXIT_FILE,
     "runs/x exists and is not empty (--out); ..."),
    (MemoryError(), 6, "out of memory (host); use a smaller --batch-size"),
    (ModuleNotFoundError("needs pyarrow: pip install 'softbpr[parquet]'", name="pyarrow"), 6,
     "needs pyarrow"),
    (ModuleNotFoundError("No module named 'softbpr.gone'", name="softbpr.gone"), 70, ""),
    (KeyError("unknown user 'u1'"), EXIT_USAGE, "unknown user 'u1'"),
    (RuntimeError("a bug"), 70, ""),
])
def test_exit_status_by_class(exc, code, text):
    """The boundary's classes (the errno advice covers the cases root cannot provoke here,
    e.g. an unreadable test.txt)."""
    from softbpr.cli import describe

    got_code, got_text = describe(exc)
    assert got_code == code and got_text.startswith(text)
