"""Bad inputs through the real CLI (issue 15): every one ends in ONE line
`softbpr: error: <what>, <where>; <what to do>` naming the file or key, with the exit status of
its class, no traceback, and no existing file changed; interrupted runs say how to resume.

Most cases call `softbpr.cli.main` in this process (the same code path as `python -m softbpr`,
without a 3-5 s interpreter start each); the signal cases and a few of the former tracebacks run
in subprocesses. Hypothesis checks the readers and the config parser on generated input.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from softbpr.cli import (
    EXIT_DATA,
    EXIT_DIVERGED,
    EXIT_FILE,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    EXIT_USAGE,
    main,
)
from softbpr.config import ConfigError, load
from softbpr.data import DataError, _norm
from softbpr.readers import read_lightgcn_file, read_table

TINY = ["--epochs", "1", "--max-batches", "1", "--dim", "4", "--layers", "1", "--device", "cpu",
        "--quiet"]
SUBPROCESS_ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


# ----------------------------------------------------------------------------------------------
# helpers


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under root (the 'nothing changed' check)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def one_line_error(err: str, *names: str) -> str:
    """The single error line; asserts no traceback and that it names each of `names`."""
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("softbpr: error: "), line
    for n in names:
        assert n in line, (n, line)
    return line


def fails(capsys, root: Path, argv: list[str], code: int, *names: str) -> str:
    """Run the CLI in-process on a bad input: exit `code`, one line naming `names`, and no file
    under `root` created, changed or removed."""
    before = snapshot(root)
    rc = main(argv)
    cap = capsys.readouterr()
    assert rc == code, (rc, cap.err)
    line = one_line_error(cap.err, *names)
    assert snapshot(root) == before
    return line


def cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "softbpr", *args], capture_output=True,
                          text=True, env=SUBPROCESS_ENV, timeout=300, check=False, **kw)


def rows_csv(n_users=12, per_user=6, n_items=15, header=True) -> str:
    rows = [f"{u},{(u * 5 + k) % n_items},{1000 + k}" for u in range(n_users)
            for k in range(per_user)]
    return ("user,item,timestamp\n" if header else "") + "\n".join(rows) + "\n"


# ----------------------------------------------------------------------------------------------
# fixtures: a folder of bad files, and one finished tiny run


@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("bad")
    good = rows_csv()
    (d / "good.csv").write_text(good)
    gz = gzip.compress(good.encode() * 20)
    (d / "truncated.csv.gz").write_bytes(gz[:len(gz) // 2])
    (d / "notgzip.csv.gz").write_bytes(b"plain text, not gzip\n")
    (d / "empty.csv").write_text("")
    (d / "blank.csv").write_text("\n  \n\n")
    (d / "binary.csv").write_bytes(np.random.default_rng(0).integers(0, 256, 4096,
                                                                       dtype=np.uint8).tobytes())
    (d / "header_only.csv").write_text("user,item,timestamp\n")
    (d / "one_field.csv").write_text("1\n2\n3\n")
    (d / "five_cols.txt").write_text("1 2 3 4 5\n2 3 4 5 6\n")
    lines = [" ".join(str(x) for x in [u, *range(u % 5 + 2)]) for u in range(30)]
    (d / "ragged.txt").write_text("\n".join(lines) + "\n")  # LightGCN lines, no test sibling
    (d / "empty_item.csv").write_text(good.replace("\n3,0,1000\n", "\n3,,1000\n"))
    (d / "bad_time.csv").write_text(good.replace("\n3,0,1000\n", "\n3,0,soon\n"))
    (d / "other_header.csv").write_text(good.replace("user,item,timestamp", "who,what,when"))
    (d / "swapped_header.csv").write_text(good.replace("user,item,timestamp",
                                                       "item,user,timestamp"))
    (d / "one_each.csv").write_text("".join(f"{u},{u % 7}\n" for u in range(40)))
    (d / "wrong_types.csv").write_text("user,item,timestamp\n1,2,3\n1,2,[]\n")
    (d / "bad.toml").write_bytes(b"\xff\xfe[train]\nlr = 1\n")
    (d / "broken.toml").write_text("[train\nlr = \n")
    (d / "typo.toml").write_text("[sampler]\npoolsize = 8\n")
    (d / "wrongtype.toml").write_text("[train]\nlr = \"fast\"\n")
    (d / "a_folder").mkdir()
    (d / "users_latin1.txt").write_bytes(b"caf\xe9\n")
    (d / "seeds.toml").write_text('[sweep]\nseeds = "one"\n[base]\ndata = "synthetic-small"\n')
    lg = d / "lg_negative"
    lg.mkdir()
    (lg / "train.txt").write_text("0 1 2\n1 2 -3\n")
    (lg / "test.txt").write_text("0 3\n")
    lg = d / "lg_word"
    lg.mkdir()
    (lg / "train.txt").write_text("0 1 2\n1 two 3\n")
    (lg / "test.txt").write_text("0 3\n")
    lg = d / "lg_empty_test"
    lg.mkdir()
    (lg / "train.txt").write_text("".join(f"{u} 1 2 3 4\n" for u in range(5)))
    (lg / "test.txt").write_text("\n")
    lg = d / "lg_gz"
    lg.mkdir()
    g = gzip.compress(("".join(f"{u} 1 2 3 4\n" for u in range(500))).encode())
    (lg / "train.txt.gz").write_bytes(g[:len(g) // 2])
    (lg / "test.txt").write_text("0 5\n")
    (d / "nodata").mkdir()
    (d / "nodata" / "readme.txt").write_text("no train.txt here")
    (d / "a_file.txt").write_text("mine")
    (d / "existing.npz").write_bytes(b"keep me")
    return d


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A finished tiny run (CSV data, so string-free integer ids)."""
    d = tmp_path_factory.mktemp("run")
    (d / "data.csv").write_text(rows_csv())
    out = d / "run"
    assert main(["train", "--data", str(d / "data.csv"), *TINY, "--out", str(out)]) == 0
    return out


@pytest.fixture
def run_copy(run_dir, tmp_path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(run_dir, out)
    return out


# ----------------------------------------------------------------------------------------------
# data files: truncated, empty, binary, wrong shape, wrong types


@pytest.mark.parametrize("name,where", [
    ("truncated.csv.gz", "truncated.csv.gz: the compressed file is truncated or corrupt"),
    ("notgzip.csv.gz", "notgzip.csv.gz"),
    ("empty.csv", "empty.csv: the file is empty"),
    ("blank.csv", "blank.csv: the file is empty"),
    ("binary.csv", "binary.csv"),
    ("header_only.csv", "header_only.csv:1: the file has a header but no data lines"),
    ("one_field.csv", "one_field.csv:1: one field per line"),
    ("five_cols.txt", "five_cols.txt:1: 5 fields per line and no header; name the columns"),
    ("ragged.txt", "ragged.txt: its lines hold 3 to 7 integer ids"),
    ("empty_item.csv", "empty_item.csv:20: the item id is empty"),
    ("bad_time.csv", "bad_time.csv:20: timestamp 'soon' is not a number"),
    ("wrong_types.csv", "wrong_types.csv:3: timestamp '[]' is not a number"),
    ("other_header.csv", "other_header.csv:1: the header 'who,what,when' names no user and item"),
    ("one_each.csv", "one_each: no test pairs, so the test metrics would be NaN"),
    ("lg_negative", "train.txt:2: a negative id"),
    ("lg_word", "train.txt:2: a non-integer id 'two'"),
    ("lg_empty_test", "lg_empty_test: no test pairs"),
    ("lg_gz", "train.txt.gz: the compressed file is truncated or corrupt"),
    ("nodata", "nodata: a folder must hold train.txt and test.txt"),
    ("missing.csv", "missing.csv: no such file or folder"),
])
def test_bad_data_files(capsys, bad, name, where):
    out = bad / "never"
    fails(capsys, bad, ["train", "--data", str(bad / name), *TINY, "--out", str(out)],
          EXIT_DATA, where)
    assert not out.exists()  # the data is read before the run folder is made: nothing left


def test_dev_null_is_not_a_data_file(capsys, bad):
    fails(capsys, bad, ["train", "--data", "/dev/null", *TINY, "--out", str(bad / "never")],
          EXIT_DATA, "/dev/null: not a regular file")


def test_columns_must_agree_with_a_header(capsys, bad):
    line = fails(capsys, bad, ["train", "--data", str(bad / "swapped_header.csv"), "--columns",
                               "user,item,timestamp", *TINY, "--out", str(bad / "never")],
                 EXIT_DATA, "swapped_header.csv:1", "--columns")
    assert "item,user,timestamp" in line


def test_format_lightgcn_on_a_csv_is_short(capsys, bad):
    line = fails(capsys, bad, ["train", "--data", str(bad / "good.csv"), "--format", "lightgcn",
                               *TINY, "--out", str(bad / "never")],
                 EXIT_DATA, "good.csv", "needs train and test files")
    assert len(line) < 300  # no listing of the folder


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root reads files whatever their mode (chmod 000 cannot be tested)")
def test_unreadable_data_file(capsys, bad, tmp_path):
    p = tmp_path / "secret.csv"
    p.write_text(rows_csv())
    p.chmod(0)
    try:
        fails(capsys, tmp_path, ["train", "--data", str(p), *TINY, "--out", str(tmp_path / "r")],
              EXIT_FILE, "permission denied", "secret.csv")
    finally:
        p.chmod(0o644)


# ----------------------------------------------------------------------------------------------
# what used to be read silently wrong


def test_two_columns_without_header(tmp_path):
    """README: `user,item[,timestamp]`; it failed asking for 3 fields."""
    p = tmp_path / "pairs.csv"
    p.write_text("".join(f"{u},{(u * 5 + k) % 15}\n" for u in range(12) for k in range(6)))
    t = read_table(p)
    assert set(t) == {"user", "item"} and len(t["user"]) == 72


def test_lightgcn_train_file_is_detected_with_its_test_sibling(tmp_path, capsys):
    """tmall-mbcgcn's buy_train.txt: TAB-separated 'user item item ...' lines; read as a table it
    gave one pair per user (and NaN metrics, exit 0)."""
    lines = ["\t".join(str(x) for x in [u, *range(u % 7, u % 7 + 3 + u % 4)]) for u in range(40)]
    (tmp_path / "buy_train.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "buy_test.txt").write_text("".join(f"{u}\t{12 + u % 3}\n" for u in range(40)))
    assert main(["data", "info", str(tmp_path / "buy_train.txt")]) == 0
    out = capsys.readouterr().out
    pairs = sum(len(ln.split()) - 1 for ln in lines) + 40
    assert f"{pairs:,}" in out  # every pair, not one per user


def test_empty_item_cell_is_not_an_id(tmp_path):
    p = tmp_path / "e.csv"
    p.write_text("user,item\n" + "".join(f"u{k},i{k}\n" for k in range(300)) + "u9,\n")
    with pytest.raises(DataError, match=r"e.csv:302: the item id is empty"):
        read_table(p)


def test_topk_above_the_catalogue_is_noted(tmp_path, capsys):
    p = tmp_path / "d.csv"
    p.write_text(rows_csv())
    assert main(["train", "--data", str(p), *TINY[:-1], "--topk", "20", "--metric", "recall@20",
                 "--out", str(tmp_path / "r")]) == 0
    assert "eval.topk 20 >= the 15 items" in capsys.readouterr().out


def test_data_info_reads_a_double_colon_file(tmp_path, capsys):
    p = tmp_path / "ratings.dat"
    p.write_text("".join(f"{u}::{(u * 3 + k) % 11}::5::{900 + k}\n" for u in range(9)
                         for k in range(5)))
    assert main(["data", "info", str(p), "--columns", "user,item,rating,timestamp"]) == 0
    assert "45" in capsys.readouterr().out
    fails(capsys, tmp_path, ["data", "info", str(p), "--format", "nope"], EXIT_USAGE, "--format")


# ----------------------------------------------------------------------------------------------
# config files, flags and sweep files


@pytest.mark.parametrize("args,names", [
    (["--config", "{bad}/bad.toml"], ["bad.toml: not UTF-8 text", "--config"]),
    (["--config", "{bad}/broken.toml"], ["broken.toml: invalid TOML"]),
    (["--config", "{bad}/typo.toml"], ["typo.toml: unknown key 'sampler.poolsize'",
                                       "pool_size"]),
    (["--config", "{bad}/wrongtype.toml"], ["train.lr must be float", "fast"]),
    (["--config", "{bad}/a_folder"], ["a_folder: is a folder"]),
    (["--config", "{bad}/missing.toml"], ["missing.toml: config file not found"]),
    (["--topk", "abc"], ["eval.topk", "'abc'"]),
    (["--topk", "0"], ["eval.topk"]),
    (["--device", "tpu"], ["train.device = 'tpu'", "cuda:N"]),
    (["--epochs", "many"], ["argument --epochs"]),
    (["--alpha", "nan"], ["loss.alpha"]),
    (["--lr", "-1"], ["train.lr"]),
])
def test_bad_config_and_flags(capsys, bad, args, names):
    args = [a.replace("{bad}", str(bad)) for a in args]
    fails(capsys, bad, ["train", "--data", str(bad / "good.csv"), *TINY, *args, "--out",
                        str(bad / "never")], EXIT_USAGE, *names)


def test_sweep_seeds_must_be_integers(capsys, bad):
    fails(capsys, bad, ["sweep", str(bad / "seeds.toml"), "--dry-run"], EXIT_USAGE,
          "seeds.toml", "seeds must be a list of integers", "'one'")
    fails(capsys, bad, ["sweep", str(bad / "seeds.toml"), "--seeds", "one"], EXIT_USAGE,
          "argument --seeds")
    fails(capsys, bad, ["sweep", str(bad / "bad.toml")], EXIT_USAGE, "bad.toml: not UTF-8")


# ----------------------------------------------------------------------------------------------
# run directories and checkpoints: corrupted, truncated, empty, random bytes, hostile paths


def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[:p.stat().st_size // 2])


@pytest.mark.parametrize("damage", ["truncated", "empty", "random", "text", "tensor"])
@pytest.mark.parametrize("command", [["evaluate"], ["recommend", "--user", "1"],
                                     ["export", "--out", "{tmp}/e.npz"]])
def test_damaged_model_pt(capsys, run_copy, tmp_path, damage, command):
    import torch

    m = run_copy / "model.pt"
    if damage == "truncated":
        _truncate(m)
    elif damage == "empty":
        m.write_bytes(b"")
    elif damage == "random":
        m.write_bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    elif damage == "text":
        m.write_text(rows_csv())
    else:
        torch.save(torch.zeros(3), m)
    argv = [command[0], str(run_copy), *[a.replace("{tmp}", str(tmp_path)) for a in command[1:]]]
    fails(capsys, tmp_path, argv, EXIT_DATA, "model.pt")
    assert not (tmp_path / "e.npz").exists()


def test_missing_run_and_data_file_as_run(capsys, bad, run_copy):
    fails(capsys, bad, ["evaluate", str(bad / "nope")], EXIT_FILE, "nope: no such run directory")
    fails(capsys, bad, ["evaluate", str(bad / "good.csv")], EXIT_DATA,
          "good.csv: not a readable softbpr checkpoint")
    (run_copy / "model.pt").unlink()
    fails(capsys, run_copy, ["recommend", str(run_copy), "--user", "1"], EXIT_FILE,
          "model.pt: no checkpoint in this run directory")


def test_use_flags(capsys, bad, run_dir):
    root = run_dir.parent
    fails(capsys, root, ["evaluate", str(run_dir), "--topk", "0"], EXIT_USAGE, "--topk")
    fails(capsys, root, ["evaluate", str(run_dir), "--topk", "abc"], EXIT_USAGE, "--topk", "abc")
    fails(capsys, root, ["recommend", str(run_dir), "--users-file",
                         str(bad / "users_latin1.txt")], EXIT_USAGE,
          "users_latin1.txt: not UTF-8", "--users-file")
    fails(capsys, root, ["recommend", str(run_dir), "--users", "1"], EXIT_FILE,  # (abbreviated)
          "no such file or directory, 1 (--users-file)")
    fails(capsys, root, ["recommend", str(run_dir), "--user", "1", "--k", "0"], EXIT_USAGE, "k")
    # checked before anything is read: a missing run still reports the bad --k
    fails(capsys, root, ["recommend", str(root / "nowhere"), "--user", "1", "--k", "-3"],
          EXIT_USAGE, "--k", "integer >= 1")


def test_export_never_overwrites(capsys, bad, run_dir):
    target = bad / "existing.npz"
    fails(capsys, bad, ["export", str(run_dir), "--out", str(target)], EXIT_FILE,
          "existing.npz exists", "--overwrite")
    assert target.read_bytes() == b"keep me"
    fails(capsys, bad, ["export", str(run_dir), "--out", str(bad / "no" / "e.npz")], EXIT_FILE,
          "no: no such folder")
    fails(capsys, bad, ["export", str(run_dir), "--out", str(bad / "e.txt")], EXIT_USAGE,
          "e.txt: unknown export format")
    fails(capsys, bad, ["export", str(run_dir), "--out", "/proc/softbpr-x.npz"], EXIT_FILE,
          "/proc/softbpr-x.npz")
    assert main(["export", str(run_dir), "--out", str(target), "--overwrite"]) == 0
    assert set(np.load(target)) >= {"user_ids", "item_embeddings"}
    target.write_bytes(b"keep me")


def test_export_to_a_folder(capsys, tmp_path, run_dir):
    """--out naming a folder: one line naming --out, before the model is read, nothing made."""
    (tmp_path / "x.npz").mkdir()
    (tmp_path / "p.users.parquet").mkdir()
    for out, extra in (("x.npz", []), ("x.npz", ["--overwrite"]),
                       ("p.parquet", ["--overwrite"])):
        line = fails(capsys, tmp_path, ["export", str(run_dir), "--out", str(tmp_path / out),
                                        *extra], EXIT_FILE, "is a folder", "--out")
        assert ".tmp" not in line
    fails(capsys, tmp_path, ["export", str(tmp_path / "no_run"), "--out",
                             str(tmp_path / "x.npz")], EXIT_FILE, "x.npz is a folder", "--out")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["p.users.parquet", "x.npz"]


def test_sweep_bad_device_names_no_flag(capsys, tmp_path):
    f = tmp_path / "s.toml"
    f.write_text(f'[sweep]\nout = "{tmp_path / "out"}"\n[base]\ndata = "synthetic-small"\n'
                 'epochs = 1\ndim = 4\n')
    line = fails(capsys, tmp_path, ["sweep", str(f), "--set", "device=tpu"], EXIT_USAGE,
                 "train.device = 'tpu'")
    assert "--device" not in line and not (tmp_path / "out").exists()


def test_out_never_overwrites(capsys, bad):
    data = ["--data", str(bad / "good.csv"), *TINY]
    fails(capsys, bad, ["train", *data, "--out", str(bad / "a_file.txt")], EXIT_FILE,
          "a_file.txt is a file")
    fails(capsys, bad, ["train", *data, "--out", str(bad / "a_file.txt"), "--overwrite"],
          EXIT_FILE, "a_file.txt is a file")
    fails(capsys, bad, ["train", *data, "--out", str(bad / "nodata")], EXIT_FILE,
          "nodata exists and is not empty", "--overwrite")
    fails(capsys, bad, ["train", *data, "--out", str(bad / "a_file.txt" / "sub")], EXIT_FILE,
          "not a directory")
    fails(capsys, bad, ["train", *data, "--out", "/proc/softbpr-run"], EXIT_FILE,
          "/proc/softbpr-run")


def test_resume_checks(capsys, run_copy, bad):
    fails(capsys, bad, ["train", "--resume", str(bad / "a_folder")], EXIT_FILE,
          "not a run directory")
    fails(capsys, run_copy, ["train", "--resume", str(run_copy)], EXIT_FILE, "already finished")
    (run_copy / "result.json").unlink()
    cfg = json.loads((run_copy / "config.json").read_text())
    cfg["model"]["dim"] = 8
    (run_copy / "config.json").write_text(json.dumps(cfg))
    fails(capsys, run_copy, ["train", "--resume", str(run_copy)], EXIT_USAGE,
          "state.pt: the saved training state does not match", "model.dim")
    cfg["model"]["dim"] = 4
    (run_copy / "config.json").write_text(json.dumps(cfg))
    _truncate(run_copy / "state.pt")
    fails(capsys, run_copy, ["train", "--resume", str(run_copy)], EXIT_DATA,
          "state.pt: the saved training state is damaged")
    (run_copy / "config.json").write_bytes(b"\xff\xfe{")
    fails(capsys, run_copy, ["train", "--resume", str(run_copy)], EXIT_DATA,
          "config.json: not a readable run config")


def test_unfinished_run_is_resumed_or_overwritten(capsys, tmp_path):
    """A run stopped before its first state.pt: --out refuses it with the way out; --resume
    starts it again; --overwrite starts afresh and removes the old training state."""
    data = tmp_path / "d.csv"
    data.write_text(rows_csv())
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text(json.dumps(load(overrides={"data": str(data), "dim": 4,
                                                                "layers": 1, "epochs": 1,
                                                                "max_batches": 1,
                                                                "device": "cpu"}).to_dict()))
    (out / "history.jsonl").write_text("")
    fails(capsys, tmp_path, ["train", "--data", str(data), *TINY, "--out", str(out)], EXIT_FILE,
          "holds an unfinished run", "softbpr train --resume")
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert (out / "result.json").exists()
    (out / "result.json").unlink()
    (out / "state.pt").write_bytes(b"old state of another config")
    assert main(["train", "--data", str(data), *TINY, "--out", str(out), "--overwrite"]) == 0
    import torch

    assert torch.load(out / "state.pt", weights_only=False)["epoch"] == 1  # a new state


def test_report_metrics(capsys, tmp_path):
    sweep = tmp_path / "s.toml"
    data = tmp_path / "d.csv"
    data.write_text(rows_csv())
    sweep.write_text(f'[sweep]\nname = "s"\nout = "{tmp_path / "out"}"\nseeds = [1]\n[base]\n'
                     f'data = "{data}"\ndim = 4\nlayers = 1\nepochs = 1\nmax_batches = 1\n'
                     'device = "cpu"\ntopk = [5]\nmetric = "recall@5"\n')
    assert main(["sweep", str(sweep)]) == 0
    capsys.readouterr()
    fails(capsys, tmp_path, ["report", str(tmp_path / "out"), "--metrics", "bogus@3"],
          EXIT_USAGE, "--metrics", "bogus@3")
    fails(capsys, tmp_path, ["report", str(tmp_path / "out"), "--metrics", "recall@3"],
          EXIT_USAGE, "--metrics", "recall@3 not measured", "recall@5")


def test_divergence_names_the_run_and_what_is_kept(capsys, tmp_path):
    data = tmp_path / "d.csv"
    data.write_text(rows_csv())
    out = tmp_path / "r"
    assert main(["train", "--data", str(data), *TINY[2:], "--epochs", "5", "--lr", "1e30",
                 "--out", str(out)]) == EXIT_DIVERGED
    line = one_line_error(capsys.readouterr().err, f"training diverged: {out}, epoch",
                          "the loss is nan", "lower lr", "no model.pt was written")
    assert not (out / "model.pt").exists() and line


# ----------------------------------------------------------------------------------------------
# the Python API: no silent overwrite, no tqdm bars in non-terminal logs


def test_python_api_does_not_overwrite(tmp_path, blocks):
    import softbpr

    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    exp = load(overrides={"dim": 4, "layers": 1, "epochs": 1, "device": "cpu"})
    with pytest.raises(FileExistsError, match="overwrite=True"):
        softbpr.train(exp, out_dir=out, split=blocks, log=lambda m: None)
    assert snapshot(out) == {"notes.txt": hashlib.sha256(b"mine").hexdigest()}
    softbpr.train(exp, out_dir=out, split=blocks, log=lambda m: None, overwrite=True)
    assert (out / "result.json").exists() and (out / "notes.txt").read_text() == "mine"


def test_python_api_writes_no_bars_off_a_terminal(tmp_path, blocks, capfd):
    import softbpr

    exp = load(overrides={"dim": 4, "layers": 1, "epochs": 2, "device": "cpu"})
    softbpr.train(exp, split=blocks, log=lambda m: None)  # progress=True by default
    err = capfd.readouterr().err
    assert "batch/s" not in err and "\r" not in err


def test_long_epochs_and_evaluations_log_progress(blocks, monkeypatch):
    import softbpr.progress
    from softbpr.trainer import fit

    lines = []
    monkeypatch.setattr(softbpr.progress.ProgressLog.__init__, "__defaults__",
                        (print, 0.0, "", time.monotonic))  # every step is "long"
    exp = load(overrides={"dim": 4, "layers": 1, "epochs": 1, "batch_size": 8, "batch_users": 4,
                          "device": "cpu"})
    fit(exp, split=blocks, log=lines.append, progress=False)
    assert any(re.match(r"epoch 1: \d+ / \d+ batches \(\d+%\), .* ETA", ln) for ln in lines)
    assert any(re.match(r"evaluate valid: 4 / 12 users \(33%\), .* ETA", ln) for ln in lines)
    assert any(ln.startswith("evaluate test: ") for ln in lines)


# ----------------------------------------------------------------------------------------------
# real processes: former tracebacks, Ctrl-C and SIGTERM during training


def test_subprocess_bad_inputs_are_one_line(bad, tmp_path, run_dir):
    m = tmp_path / "run"
    shutil.copytree(run_dir, m)
    (m / "model.pt").write_bytes(os.urandom(3000))
    before = snapshot(bad)
    for args, code, name in [
        (["train", "--data", str(bad / "truncated.csv.gz"), *TINY, "--out", str(tmp_path / "x")],
         EXIT_DATA, "truncated.csv.gz"),
        (["recommend", str(m), "--user", "1"], EXIT_DATA, "model.pt"),
    ]:
        p = cli(*args)
        assert p.returncode == code, p.stderr
        one_line_error(p.stderr, name)
    assert snapshot(bad) == before and not (tmp_path / "x").exists()


@pytest.mark.parametrize("sig,code,word", [(signal.SIGINT, EXIT_INTERRUPTED, "interrupted"),
                                           (signal.SIGTERM, EXIT_TERMINATED,
                                            "terminated (SIGTERM)")])
def test_interrupted_sweep_says_rerun(tmp_path, monkeypatch, capsys, sig, code, word):
    import softbpr.sweep

    def killed(*a, **k):
        os.kill(os.getpid(), sig)  # as Ctrl-C / `kill PID` would, mid-sweep
        time.sleep(5)
        raise AssertionError("not reached")

    monkeypatch.setattr(softbpr.sweep, "run_sweep", killed)
    f = tmp_path / "s.toml"
    f.write_text(f'[sweep]\nout = "{tmp_path / "o"}"\n[base]\ndata = "synthetic-small"\n')
    assert main(["sweep", str(f)]) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip().splitlines() == [
        f"softbpr: {word}; rerun the same command to resume ({tmp_path / 'o'})"]


def _train_until(out: Path, epochs_done: int, sig: int, extra=()) -> subprocess.CompletedProcess:
    """Start `softbpr train` with stdout a pipe, send `sig` once `epochs_done` epochs are
    logged; returns the finished process (stdout, stderr)."""
    args = [sys.executable, "-m", "softbpr", "train", "--data", "synthetic-small", "--dim", "8",
            "--layers", "1", "--batch-size", "512", "--epochs", "400", "--eval-every", "2",
            "--patience", "0", "--device", "cpu", "--out", str(out), *extra]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=SUBPROCESS_ENV)
    seen = []
    for line in p.stdout:  # the per-epoch lines reach a pipe as they happen
        seen.append(line)
        if line.startswith(f"epoch {epochs_done:4d} |"):
            break
    p.send_signal(sig)
    out_text, err = p.communicate(timeout=120)
    return subprocess.CompletedProcess(args, p.returncode, "".join(seen) + out_text, err)


@pytest.mark.parametrize("sig,code,word", [(signal.SIGINT, EXIT_INTERRUPTED, "interrupted"),
                                           (signal.SIGTERM, EXIT_TERMINATED, "terminated")])
def test_interrupted_training_says_how_to_resume(tmp_path, sig, code, word, capsys):
    out = tmp_path / "run"
    p = _train_until(out, 2, sig)
    assert p.returncode == code, p.stderr
    line = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(line) == 1 and "Traceback" not in p.stderr, p.stderr
    m = re.fullmatch(rf"softbpr: {word}.* in epoch (\d+) of {re.escape(str(out))}; the state "
                     rf"after epoch (\d+) is saved: continue with `softbpr train --resume "
                     rf"{re.escape(str(out))}`", line[0])
    assert m, line[0]
    assert int(m.group(2)) >= 1 and int(m.group(1)) >= int(m.group(2)) + 1
    assert re.search(r"(?m)^epoch    1 \| loss [\d.]+ \| .*elapsed \S+, ETA \S+$", p.stdout)
    assert "note: soft_bpr ranks by (1 - α)" in p.stdout
    assert not (out / "result.json").exists()
    # the command it names continues the run (cut short here through the time budget, which a
    # resume may change)
    cfg = json.loads((out / "config.json").read_text())
    cfg["train"]["time_limit"] = 1e-6
    (out / "config.json").write_text(json.dumps(cfg))
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    epochs = [json.loads(x)["epoch"] for x in (out / "history.jsonl").read_text().splitlines()]
    assert epochs == list(range(1, len(epochs) + 1)) and len(epochs) == int(m.group(2)) + 1
    assert json.loads((out / "result.json").read_text())["stop_reason"] == "time_limit"


def test_quiet_stays_quiet(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # (no busy-CPU note)
    data = tmp_path / "d.csv"
    data.write_text(rows_csv())
    assert main(["train", "--data", str(data), *TINY, "--out", str(tmp_path / "r")]) == 0
    cap = capsys.readouterr()
    assert cap.err == "" and len(cap.out.splitlines()) == 2, cap.out  # the header, the result


# ----------------------------------------------------------------------------------------------
# Hypothesis: the readers and the config parser


HOSTILE = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp", "Zs"),
                                         blacklist_characters=',"\x85'),
                  min_size=1, max_size=12)
FAST = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@FAST
@given(rows=st.lists(st.tuples(HOSTILE, HOSTILE), min_size=1, max_size=40))
def test_hostile_ids_round_trip(tmp_path, rows):
    """Any printable id without the separator or a quote is read back as written (up to the
    documented integer normalisation, "007" == "7"), whatever the file's other ids look like."""
    p = tmp_path / "ids.csv"
    p.write_text("user,item\n" + "".join(f"{u},{i}\n" for u, i in rows), encoding="utf-8")
    t = read_table(p)
    assert [_norm(x) for x in t["user"].tolist()] == [_norm(u.strip()) for u, _ in rows]
    assert [_norm(x) for x in t["item"].tolist()] == [_norm(i.strip()) for _, i in rows]


@FAST
@given(data=st.binary(max_size=300) | st.text(max_size=300).map(str.encode),
       suffix=st.sampled_from([".csv", ".txt", ".inter", ".csv.gz"]),
       columns=st.sampled_from([None, "user,item", "user,item,timestamp", "item,user,x"]),
       cut=st.integers(0, 40))
def test_any_bytes_read_or_give_a_data_error(tmp_path, data, suffix, columns, cut):
    """Whatever the bytes (gzipped, possibly truncated): columns, or a DataError naming the
    file (never another exception)."""
    p = tmp_path / f"f{suffix}"
    if suffix == ".csv.gz":
        data = gzip.compress(data)
        data = data[:len(data) - cut] if cut else data
    p.write_bytes(data)
    try:
        t = read_table(p, columns)
    except DataError as e:
        assert str(p.name) in str(e)
        return
    assert len(t["user"]) == len(t["item"]) > 0


@FAST
@given(data=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_bytes_as_lightgcn_file(tmp_path, data):
    p = tmp_path / "train.txt"
    p.write_bytes(data)
    try:
        u, i = read_lightgcn_file(p)
    except DataError as e:
        assert "train.txt" in str(e)
        return
    assert len(u) == len(i) and (len(u) == 0 or (u.min() >= 0 and i.min() >= 0))


TOKEN = st.integers(-3, 10**6).map(str) | st.sampled_from(
    ["x", "1.5", "007", "+4", "-0", "99999999999999999999", "1e3", "٣"])


@FAST
@given(lines=st.lists(st.lists(TOKEN, max_size=6), max_size=10),
       sep=st.sampled_from([" ", "\t", "  ", " \t"]), end=st.sampled_from(["\n", "\r\n"]))
def test_lightgcn_lines_parse_as_the_format_says(tmp_path, lines, sep, end):
    """'user item item ...' with non-negative integer ids gives exactly the (user, item) pairs
    of the lines; any other token is a DataError naming the file."""
    p = tmp_path / "train.txt"
    p.write_text(end.join(sep.join(ln) for ln in lines) + end, encoding="utf-8", newline="")
    ok = all(re.fullmatch(r"\+?[0-9]+", t) and int(t) < 2**63 for ln in lines for t in ln)
    try:
        u, i = read_lightgcn_file(p)
    except DataError as e:
        assert "train.txt" in str(e)
        assert not ok or not any(lines)
        return
    assert ok
    assert list(zip(u.tolist(), i.tolist())) == [(int(ln[0]), int(t)) for ln in lines
                                                 for t in ln[1:]]


SCALARS = (st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True)
           | st.text(max_size=8) | st.lists(st.integers(-5, 60), max_size=3))


@FAST
@given(values=st.dictionaries(st.sampled_from(["lr", "epochs", "topk", "alpha", "pool_size",
                                               "model", "preset", "loss", "sampler", "dim",
                                               "device", "metric", "columns", "time_limit",
                                               "n_negatives", "seed", "nonsense", "pool_sise"]),
                              SCALARS, max_size=5))
def test_config_overrides_validate_or_raise_config_error(values):
    try:
        exp = load(overrides=values)
    except ConfigError as e:
        assert str(e)
        return
    again = type(exp).from_dict(json.loads(json.dumps(exp.to_dict())))
    assert again == exp


@FAST
@given(text=st.text(max_size=200))
def test_any_toml_text_loads_or_raises_config_error(tmp_path, text):
    p = tmp_path / "c.toml"
    p.write_text(text, encoding="utf-8")
    try:
        load(p)
    except ConfigError as e:
        assert "c.toml" in str(e) or "." in str(e) or "must" in str(e)
