"""The real datasets in ../shared/data load with one documented command (docs/data.md) and their
counts match each folder's SOURCE.md. Skipped where the data is absent."""

import numpy as np
import pytest
from conftest import shared_data

from softbpr.cli import main
from softbpr.config import DataConfig
from softbpr.prepare import PrepareConfig, prepare
from softbpr.readers import read_lightgcn, read_table
from softbpr.split import load_split

quiet = lambda m: None


def total(s):
    return len(s.train) + len(s.valid) + len(s.test)


def test_gowalla():
    # softbpr train --data shared/data/gowalla
    s = load_split(DataConfig(data=str(shared_data("gowalla"))), log=quiet)
    assert (s.n_users, s.n_items) == (29858, 40981)
    assert len(s.train) + len(s.valid) == 810128 and len(s.test) == 217242
    assert total(s) == 1027370
    assert 343 in s.user_map and 8975 in s.item_map  # original ids from user_list/item_list
    assert not any("never seen" in n for n in s.notes[:3])


def test_taobao_adclick_nfa():
    # softbpr train --data shared/data/taobao-adclick-nfa
    d = shared_data("taobao-adclick-nfa")
    g = read_lightgcn(d)
    ti, si = g.parts["train"][1], g.parts["test"][1]
    assert (len(ti), len(si)) == (227108, 54723)
    assert len(np.unique(ti)) == 24224 and ti.max() == 24623 and len(np.unique(si)) == 17825
    assert len(np.setdiff1d(si, ti)) == 176  # item cold start, as SOURCE.md says
    s = load_split(DataConfig(data=str(d)), log=quiet)
    assert (s.n_users, s.n_items, total(s)) == (33932, 24400, 281831)


def test_tmall_mbcgcn():
    # softbpr train --data shared/data/tmall-mbcgcn/buy_train.txt --format lightgcn
    d = shared_data("tmall-mbcgcn")
    g = read_lightgcn(d / "buy_train.txt")
    ti, (su, si) = g.parts["train"][1], g.parts["test"]
    assert (len(ti), len(np.unique(ti)), ti.max()) == (92180, 11844, 11902)
    assert len(si) == 15449 and len(np.unique(su)) == 15449
    assert len(np.setdiff1d(si, ti)) == 59
    s = load_split(DataConfig(data=str(d / "buy_train.txt"), format="lightgcn"), log=quiet)
    assert (s.n_users, total(s), len(s.test)) == (15449, 92180 + 15449, 15449)


def test_ml_100k():
    # softbpr train --data shared/data/ml-100k/u.data --columns user,item,rating,timestamp
    p = shared_data("ml-100k") / "u.data"
    s = load_split(DataConfig(data=str(p), columns="user,item,rating,timestamp"), log=quiet)
    assert (s.n_users, s.n_items, total(s)) == (943, 1682, 100000)
    t = read_table(p, "user,item,rating,timestamp", ("user", "item", "rating", "timestamp"))
    assert np.bincount(t["rating"].astype(int))[1:].tolist() == [6110, 11370, 27145, 34174, 21201]
    assert (t["timestamp"].min(), t["timestamp"].max()) == (874724710.0, 893286638.0)


def test_ml_1m():
    # softbpr train --data shared/data/ml-1m/ratings_implicit.dat.gz --columns user,item
    d = shared_data("ml-1m")
    s = load_split(DataConfig(data=str(d / "ratings_implicit.dat.gz"), columns="user,item"),
                   log=quiet)
    assert (s.n_users, s.n_items, total(s)) == (6040, 3706, 1000209)
    assert s.user_map.ids.max() == 6040 and s.item_map.ids.max() == 3952


def test_ml_1m_parquet():
    pytest.importorskip("pyarrow")
    t = read_table(shared_data("ml-1m") / "ratings.parquet")
    assert len(t["user"]) == 1000209 and len(np.unique(t["item"])) == 3706
    assert t["user"][:5].tolist() == ["1"] * 5 and t["item"][:5].tolist() == [
        "1193", "661", "914", "3408", "2355"]


def test_taobao_ecomm_dyhatr():
    # softbpr train --data shared/data/taobao-ecomm-dyhatr/ecomm_edge_train.txt
    #               --columns user,item,behavior,timestamp
    p = shared_data("taobao-ecomm-dyhatr") / "ecomm_edge_train.txt"
    t = read_table(p, "user,item,behavior,timestamp", ("user", "item", "behavior", "timestamp"))
    assert len(t["user"]) == 85213
    assert np.bincount(t["behavior"])[1:].tolist() == [57917, 5529, 15066, 6701]
    assert (t["timestamp"].min(), t["timestamp"].max()) == (20190610.0, 20190619.0)
    logs = []
    s = load_split(DataConfig(data=str(p), columns="user,item,behavior,timestamp"),
                   log=logs.append)
    assert (s.n_users, s.n_items, total(s)) == (1476, 34505, 47924)
    assert any("dropped 37,289 duplicate" in m for m in logs)  # 85,213 rows -> 47,924 pairs


@pytest.mark.parametrize("name,cols", [("ml-100k", "u.data"),
                                       ("taobao-ecomm-dyhatr", "ecomm_edge_train.txt")])
def test_prepare_temporal_split_on_real_data(tmp_path, monkeypatch, name, cols):
    # softbpr data prepare NAME --out DIR   (with SOFTBPR_DATA pointing at shared/data)
    monkeypatch.setenv("SOFTBPR_DATA", str(shared_data(name).parent))
    s = prepare(name, tmp_path / name, PrepareConfig(), log=quiet)
    c = s["counts"]
    assert s["preprocessing"]["split"] == "temporal" and s["preprocessing"]["user_core"] == 10
    sp = load_split(DataConfig(data=str(tmp_path / name)), log=quiet)
    assert (sp.n_users, len(sp.train), len(sp.valid), len(sp.test)) == (
        c["users"], c["train"], c["valid"], c["test"])
    # per user: 10% (rounded) of its interactions in test, the latest ones
    per_user = np.bincount(np.concatenate([sp.train.users, sp.valid.users, sp.test.users]))
    want = np.floor(0.1 * per_user + 0.5).astype(int)
    assert np.array_equal(np.bincount(sp.test.users, minlength=sp.n_users), want)
    if name == "ml-100k":
        assert (c["users"], c["items"], c["interactions"]) == (943, 1682, 100000)
    else:  # 350 users have fewer than 10 distinct items
        assert (c["users"], c["interactions"]) == (1126, 46077)
    assert main(["data", "info", str(tmp_path / name)]) == 0
