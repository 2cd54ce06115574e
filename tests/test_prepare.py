"""The paper's preprocessing (prepare.py) and prepared folders, on a small hand-made log."""

import json

import numpy as np
import pytest

from softbpr.cli import main
from softbpr.config import DataConfig
from softbpr.data import DataError
from softbpr.prepare import PrepareConfig, prepare
from softbpr.split import load_split


def taobao_like(tmp_path, n_users=30, seed=0):
    """UserBehavior-style rows: user,item,category,behaviour,timestamp (no header), string
    behaviours, duplicates, a few light users, and ties in time."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        n = 4 if u % 10 == 0 else 15  # users 0, 10, 20 fall below the 10-core
        for k in range(n):
            item = 1000 + (u * 7 + k * 3) % 60
            t = 1511539200 + 3600 * (k // 2)  # pairs of rows share a timestamp (ties)
            rows.append(f"u{u},{item},5,{rng.choice(['pv', 'fav', 'cart', 'buy'])},{t}")
        rows.append(rows[-1].replace(",pv,", ",buy,"))  # same pair again, same time
    p = tmp_path / "UserBehavior.csv"
    p.write_text("\n".join(rows) + "\n")
    return p


COLS = "user,item,category,behavior,timestamp"
quiet = lambda m: None


def test_prepare_follows_the_paper_and_round_trips(tmp_path):
    src = taobao_like(tmp_path)
    logs = []
    s = prepare(src, tmp_path / "out", PrepareConfig(), columns=COLS, log=logs.append)
    c = s["counts"]
    assert c["users"] == 27  # 3 users below the 10-core dropped, with a count
    assert any("k-core (users >= 10)" in m and "dropped 3 users" in m for m in logs)
    assert any("duplicate (user, item)" in m for m in logs)
    # temporal: per user the latest 10% (round(1.5) = 2 of 15) -> test, 2 before -> valid
    assert c["test"] == 27 * 2 and c["valid"] == 27 * 2 and c["train"] == 27 * 11
    assert s["preprocessing"]["tie_rule"].startswith("ties in time")
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == ["item_list.txt", "summary.json", "test.txt", "train.txt", "user_list.txt",
                     "valid.txt"]
    # `softbpr train --data DIR` reads it back with the original ids and the same pairs
    sp = load_split(DataConfig(data=str(tmp_path / "out")), log=lambda m: None)
    assert (len(sp.train), len(sp.valid), len(sp.test)) == (c["train"], c["valid"], c["test"])
    assert "u1" in sp.user_map and "u0" not in sp.user_map and sp.item_map.ids.dtype == np.int64
    # test holds each user's latest rows: no train row of a user is later than its test rows
    times = {}
    for line in src.read_text().splitlines():
        u, i, _, _, t = line.split(",")
        times.setdefault((u, int(i)), int(t))  # earliest copy of a pair
    ext = lambda p: [(sp.user_map.ids[u], sp.item_map.ids[i]) for u, i in zip(p.users, p.items)]
    last_train, first_test = {}, {}
    for u, i in ext(sp.train):
        last_train[u] = max(last_train.get(u, 0), times[(u, i)])
    for u, i in ext(sp.test):
        first_test[u] = min(first_test.get(u, 1 << 40), times[(u, i)])
    assert all(last_train[u] <= first_test[u] for u in first_test)


def test_positives_subset_and_determinism(tmp_path):
    src = taobao_like(tmp_path)
    a = prepare(src, tmp_path / "a", PrepareConfig(n_users=10, seed=1), columns=COLS,
                log=lambda m: None)
    b = prepare(src, tmp_path / "b", PrepareConfig(n_users=10, seed=1), columns=COLS,
                log=lambda m: None)
    assert a["counts"] == b["counts"] and a["counts"]["users"] == 10
    assert (tmp_path / "a" / "test.txt").read_text() == (tmp_path / "b" / "test.txt").read_text()
    logs = []
    buy = prepare(src, tmp_path / "buy", PrepareConfig(positives=("buy",), user_core=2,
                                                       split="random"), columns=COLS,
                  log=logs.append)
    assert any(m.startswith("positives buy: dropped") for m in logs)
    assert buy["counts"]["interactions"] < a["counts"]["interactions"] * 3
    with pytest.raises(FileExistsError):
        prepare(src, tmp_path / "a", PrepareConfig(), columns=COLS, log=lambda m: None)
    with pytest.raises(DataError, match="needs a rating column"):
        prepare(src, tmp_path / "c", PrepareConfig(min_rating=4), columns=COLS,
                log=lambda m: None)


def test_train_on_the_file_and_prepare_take_one_ingestion_path(tmp_path):
    """`softbpr train --data FILE --kcore K` and `data prepare --user-core K --item-core K`
    de-duplicate, filter and split alike: the same pairs (in external ids) and notes."""
    src = taobao_like(tmp_path)
    ext = lambda sp, p: sorted(zip(sp.user_map.to_external(p.users).tolist(),
                                   sp.item_map.to_external(p.items).tolist()))
    for split in ("temporal", "random"):
        s = prepare(src, tmp_path / split, PrepareConfig(user_core=7, item_core=7, split=split,
                                                         seed=3), columns=COLS, log=quiet)
        prepared = load_split(DataConfig(data=str(tmp_path / split)), log=quiet)
        direct = load_split(DataConfig(data=str(src), columns=COLS, split=split, seed=3,
                                       kcore=7), log=quiet)
        assert (direct.n_users, direct.n_items) == (27, 35)  # of 30 x 60: both sides filtered
        for part in ("train", "valid", "test"):
            assert ext(direct, getattr(direct, part)) == ext(prepared, getattr(prepared, part))
        core = [n for n in direct.notes if n.startswith("k-core (users >= 7, items >= 7)")]
        assert core and core[0] in s["notes"]
        assert any("duplicate" in n for n in direct.notes)


def test_cli_prepare_info_then_train_keeps_external_ids(tmp_path, capsys):
    src = taobao_like(tmp_path)
    out = tmp_path / "prep"
    assert main(["data", "prepare", str(src), "--columns", COLS, "--out", str(out)]) == 0
    assert main(["data", "info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Dataset" in text and "Density" in text and "27" in text
    run = tmp_path / "run"
    assert main(["train", "--data", str(out), "--epochs", "1", "--eval-every", "1", "--dim", "8",
                 "--device", "cpu", "--quiet", "--out", str(run)]) == 0
    emb = np.load(run / "embeddings.npz")
    assert "u1" in emb["user_ids"].tolist()
    assert set(emb["item_ids"].tolist()) <= set(range(1000, 1060))
    assert json.loads((out / "summary.json").read_text())["counts"]["users"] == 27


def test_cli_data_list_and_fetch_from_local_copy(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SOFTBPR_DATA", str(tmp_path / "cache"))
    assert main(["data", "list"]) == 0
    text = capsys.readouterr().out
    assert "taobao" in text and "100,150,807" in text and "cached" in text
    src = tmp_path / "UserBehavior.csv"  # the unzipped file is accepted as the archive member
    src.write_text("1,2,3,pv,1511539200\n")
    assert main(["data", "fetch", "taobao", "--from", str(src), "--quiet"]) == 0
    assert (tmp_path / "cache" / "taobao" / "UserBehavior.csv").exists()
    assert "cannot be verified" in capsys.readouterr().out
    assert main(["data", "fetch", "no-such-set"]) == 4  # cli.EXIT_DATA


@pytest.mark.parametrize("flags, msg", [
    (["--valid-ratio", "1.5"], "--valid-ratio must be in"),
    (["--test-ratio", "-0.5"], "--test-ratio must be in"),
    (["--valid-ratio", "0.5", "--test-ratio", "0.5"], "--valid-ratio + --test-ratio"),
    (["--valid-ratio", "nan"], "--valid-ratio must be in"),
    (["--user-core", "-1"], "--user-core must be >= 0"),
    (["--item-core", "-2"], "--item-core must be >= 0"),
    (["--split", "random", "--seed", "-1"], "--seed must be in"),
    (["--split", "random", "--seed", str(2**63)], "--seed must be in"),
])
def test_cli_prepare_refuses_bad_ratios_cores_and_seeds(tmp_path, capsys, flags, msg):
    """The bounds `softbpr train` applies: one line naming the flag, and no dataset written."""
    src = taobao_like(tmp_path)
    out = tmp_path / "out"
    assert main(["data", "prepare", str(src), "--columns", COLS, "--out", str(out)] + flags) == 4
    err = capsys.readouterr().err
    assert err.startswith("softbpr: error: ") and msg in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_prepare_refuses_to_write_over_its_source(tmp_path, capsys):
    """A LightGCN folder as both source and --out (even with --overwrite), a folder holding
    the source file, or a source inside --out: refused, the source untouched."""
    lg = tmp_path / "lgcopy"
    lg.mkdir()
    (lg / "train.txt").write_text("0 1 2 3\n1 2 3 4\n")
    (lg / "test.txt").write_text("0 4\n1 5\n")
    before = {p.name: p.read_text() for p in lg.iterdir()}
    sub = tmp_path / "raw" / "log"
    sub.mkdir(parents=True)
    src = taobao_like(sub)
    cases = [[str(lg), "--out", str(lg), "--split", "given", "--user-core", "0"],
             [str(lg / "train.txt"), "--out", str(lg), "--split", "given", "--user-core", "0"],
             [str(src), "--out", str(sub), "--columns", COLS],
             [str(src), "--out", str(tmp_path / "raw"), "--columns", COLS]]
    for args in cases:
        assert main(["data", "prepare", *args, "--overwrite"]) == 4, args
        err = capsys.readouterr().err
        assert "would overwrite the source" in err and len(err.splitlines()) == 1
    assert {p.name: p.read_text() for p in lg.iterdir()} == before
    assert sorted(p.name for p in sub.iterdir()) == ["UserBehavior.csv"]
    # a folder beside the source is fine
    assert main(["data", "prepare", str(lg), "--out", str(tmp_path / "lg2"), "--split", "given",
                 "--user-core", "0"]) == 0
