"""Readers (with their error messages), k-core, and the split rules."""

import numpy as np
import pytest

from softbpr.config import DataConfig
from softbpr.data import DataError, Interactions, clean, k_core, make_idmap
from softbpr.readers import read_delimited, read_lightgcn, read_lightgcn_file
from softbpr.split import load_split, random_split, split_interactions, temporal_split


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_lightgcn_reader_and_errors(tmp_path):
    d = tmp_path / "lg"
    d.mkdir()
    write(d, "train.txt", "0 1 2\n1 2 3 4\n\n2 0\n")
    write(d, "test.txt", "0 3\n1 0\n2 4\n")
    g = read_lightgcn(d)
    assert sorted(g.parts) == ["test", "train"]
    assert g.parts["train"][0].tolist() == [0, 0, 1, 1, 1, 2]
    for bad, what in (("0 1\n1 -2\n", "2: a negative id"), ("0 1\n1 x3\n", "2: a non-integer"),
                      ("0 1.5\n", "1: a non-integer"), ("", "empty")):
        write(d, "train.txt", bad)
        with pytest.raises(DataError, match=what) as e:
            read_lightgcn(d)
        assert "train.txt" in str(e.value)


def test_given_split_holds_out_valid_and_says_so(tmp_path):
    d = tmp_path / "lg"
    d.mkdir()
    rows = "\n".join(f"{u} " + " ".join(str((u + k) % 30) for k in range(10)) for u in range(8))
    write(d, "train.txt", rows + "\n")
    write(d, "test.txt", "\n".join(f"{u} {(u + 20) % 30}" for u in range(8)) + "\n")
    logs = []
    s = load_split(DataConfig(data=str(d)), log=logs.append)
    assert len(s.train) == 72 and len(s.valid) == 8 and len(s.test) == 8
    assert any("no valid file" in n for n in s.notes) and any("no valid file" in m for m in logs)
    tr = set(zip(s.train.users, s.train.items))
    assert not tr & set(zip(s.valid.users, s.valid.items))
    s2 = load_split(DataConfig(data=str(d)), log=lambda m: None)
    assert np.array_equal(s.valid.items, s2.valid.items)  # seeded


@pytest.mark.parametrize("text,columns", [
    ("user,item,timestamp\nA,x,3\nA,y,1\nB,x,2\n", "user,item,timestamp"),
    ("A\tx\t5\t3\nA\ty\t5\t1\nB\tx\t4\t2\n", "user,item,rating,timestamp"),
    ("A::x::3\nA::y::1\nB::x::2\n", "user,item,timestamp"),
    ("A x 3 extra\nA y 1 extra\nB x 2 extra\n", "user,item,timestamp"),
])
def test_delimited_variants(tmp_path, text, columns):
    p = write(tmp_path, "f.csv", text)
    d = read_delimited(p, columns)
    assert d.user_map.ids.tolist() == ["A", "B"] and d.item_map.ids.tolist() == ["x", "y"]
    assert d.times.tolist() == [3.0, 1.0, 2.0]


def test_delimited_errors(tmp_path):
    with pytest.raises(DataError, match=r"f.csv:3: expected at least 2 fields"):
        read_delimited(write(tmp_path, "f.csv", "1,2\n3,4\n5\n"), "user,item")
    with pytest.raises(DataError, match="not a number"):
        read_delimited(write(tmp_path, "g.csv", "1,2,a\n"), "user,item,timestamp")
    with pytest.raises(DataError, match="empty"):
        read_delimited(write(tmp_path, "h.csv", "\n\n"))


def test_integer_ids_stay_integers():
    m, codes = make_idmap(np.array(["10", "7", "10", "900000000000"]))
    assert m.ids.dtype == np.int64 and m.ids.tolist() == [7, 10, 900000000000]
    assert codes.tolist() == [1, 0, 1, 2]
    assert m.to_internal(["900000000000", 7]).tolist() == [2, 0]
    with pytest.raises(KeyError, match="unknown id"):
        m.to_internal([8])


def inter(users, items, times=None):
    um, u = make_idmap(np.array(users))
    im, i = make_idmap(np.array(items))
    return Interactions(u, i, None if times is None else np.array(times, float), um, im)


def test_k_core_is_iterative():
    # item 9 has 1 interaction -> dropped; then user 2 falls below 2 -> dropped
    d = inter([0, 0, 1, 1, 2, 2], [1, 2, 1, 2, 1, 9])
    msgs = []
    out = k_core(d, 2, log=msgs.append)
    assert out.n_users == 2 and out.n_items == 2 and len(out) == 4
    assert "dropped 1 users and 1 items" in msgs[0]


def test_k_core_thresholds_per_side():
    # users: 0 has 3 rows, 1 has 2, 2 has 1; items: 1 has 3 rows, 2 has 2, 3 has 1
    d = inter([0, 0, 0, 1, 1, 2], [1, 2, 3, 1, 2, 1])
    msgs = []
    users_only = k_core(d, 2, 0, log=msgs.append)  # the paper's user 10-core, items unfiltered
    assert users_only.user_map.ids.tolist() == [0, 1] and len(users_only) == 5
    assert users_only.item_map.ids.tolist() == [1, 2, 3]
    assert msgs[0].startswith("k-core (users >= 2):") and "dropped 1 users and 0 items" in msgs[0]
    items_only = k_core(d, 0, 3, log=msgs.append)
    assert items_only.item_map.ids.tolist() == [1] and len(items_only) == 3
    assert msgs[1].startswith("k-core (items >= 3):")
    # both: item 3 goes (1 row), then user 2 (1 row) and so on until both hold
    both = k_core(d, 2, 2, log=msgs.append)
    assert both.user_map.ids.tolist() == [0, 1] and both.item_map.ids.tolist() == [1, 2]
    assert k_core(d, 1, 0, log=msgs.append) is d and len(msgs) == 3  # off: no note
    with pytest.raises(DataError, match="users >= 4"):
        k_core(d, 4, 0)


def test_clean_dedupes_before_the_core_filter_then_subsets():
    # user 1 has 3 rows but only 2 distinct items: a 3-core drops it once duplicates go
    d = inter([0, 0, 0, 1, 1, 1, 2, 2, 2], [1, 2, 3, 1, 1, 2, 1, 2, 3], list(range(9)))
    msgs = []
    out = clean(d, 3, 0, log=msgs.append)
    assert out.user_map.ids.tolist() == [0, 2] and len(out) == 6
    assert "duplicate" in msgs[0] and msgs[1].startswith("k-core")
    sub = clean(d, 0, 0, n_users=1, seed=3, log=msgs.append)
    assert sub.n_users == 1 and len(sub) == 3 and "random subset of 1 users" in msgs[-1]
    assert clean(d, 0, 0, n_users=1, seed=3, log=msgs.append).user_map == sub.user_map


def test_temporal_split_takes_latest_with_file_order_ties():
    # one user, 10 events; times 0..9 except a tie at the end: rows 8 and 9 both at t=9
    times = [0, 1, 2, 3, 4, 5, 6, 7, 9, 9]
    d = inter([0] * 10, list(range(10)), times)
    tr, va, te = temporal_split(d, 0.1, 0.1)
    assert np.flatnonzero(te).tolist() == [9]  # tie broken by file order: the later row
    assert np.flatnonzero(va).tolist() == [8]
    assert tr.sum() == 8


def test_split_counts_and_small_users():
    users = [0] * 20 + [1] * 2
    d = inter(users, list(range(20)) + [0, 1], list(range(22)))
    s = split_interactions(d, "temporal", 0, 0.1, 0.1, "t", log=lambda m: None)
    assert len(s.test) == 2 and len(s.valid) == 2  # user 0: 2 + 2; user 1 keeps both in train
    assert any("fewer than 3" in n for n in s.notes)
    tr, va, te = random_split(d, np.random.default_rng(1), 0.1, 0.1)
    tr2, va2, te2 = random_split(d, np.random.default_rng(1), 0.1, 0.1)
    assert (te == te2).all() and not (tr & te).any() and not (va & te).any()


def test_duplicates_dropped_with_count_keep_earliest():
    d = inter([0, 0, 0, 0, 0], [1, 1, 2, 3, 4], [5, 1, 2, 3, 4])
    logs = []
    s = split_interactions(d, "temporal", 0, 0.0, 0.2, "t", log=logs.append)
    assert "dropped 1 duplicate" in logs[0]
    # earliest copy of item 1 (t=1) kept -> latest is item 4 (t=4) -> test
    assert s.test.items.tolist() == [3]  # internal index of external item 4


def test_temporal_needs_timestamps():
    with pytest.raises(DataError, match="timestamps"):
        temporal_split(inter([0, 0], [1, 2]))


# ----------------------------------------------------------------------------------------------
# Formats (readers.py): RecBole, Parquet, gzip, MovieLens, id maps, checks on load

from softbpr.readers import detect_format, read_table


def test_recbole_atomic_file(tmp_path):
    p = write(tmp_path, "ml.inter", "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
              "196\t242\t3\t881250949\n186\t302\t3\t891717742\n196\t377\t1\t878887116\n")
    assert detect_format(p) == "recbole"
    t = read_table(p, want=("user", "item", "rating", "timestamp"))
    assert t["user"].tolist() == [196, 186, 196] and t["rating"].tolist() == [3.0, 3.0, 1.0]
    d = read_delimited(p, fmt="recbole")
    assert d.n_users == 2 and d.times.tolist()[0] == 881250949.0
    with pytest.raises(DataError, match=r"bad.inter:1: the header"):
        read_delimited(write(tmp_path, "bad.inter", "1\t2\n"), fmt="recbole")


def test_movielens_separators_and_gzip(tmp_path):
    import gzip

    rows = "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n"
    p = tmp_path / "ratings.dat.gz"
    with gzip.open(p, "wt") as fh:
        fh.write(rows)
    d = read_delimited(p, "user,item,rating,timestamp")
    assert d.item_map.ids.tolist() == [661, 1193] and d.times.tolist()[2] == 978298413.0
    tab = write(tmp_path, "u.data", rows.replace("::", "\t"))
    assert np.array_equal(read_delimited(tab, "user,item,rating,timestamp").times, d.times)
    with pytest.raises(DataError, match=r"r2.dat:2: expected at least 4 fields"):
        read_delimited(write(tmp_path, "r2.dat", "1::2::3::4\n1::2\n"),
                       "user,item,rating,timestamp")


def test_string_ids_blank_lines_and_iso_dates(tmp_path):
    # the sample says integers, a later row does not: ids are re-read as strings
    text = "".join(f"{k},{k % 7}\n" for k in range(300)) + "u_x,i_y\n\n  \n"
    d = read_delimited(write(tmp_path, "s.csv", text), "user,item")
    assert len(d) == 301 and "u_x" in d.user_map.ids.tolist() and "0" in d.user_map
    iso = write(tmp_path, "iso.csv", "user,item,time\na,x,2017-11-25 10:00:00\na,y,2017-11-25\n")
    t = read_delimited(iso).times
    assert t[0] - t[1] == 36000.0
    with pytest.raises(DataError, match=r"iso2.csv:3: timestamp 'soon' is not a number"):
        read_delimited(write(tmp_path, "iso2.csv", "user,item,time\na,x,2017-11-25\na,y,soon\n"))


def test_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    p = tmp_path / "r.parquet"
    pq.write_table(pa.table({"userID": ["1", "1", "2"], "movieID": ["10", "11", "10"],
                             "ts": [3, 1, 2]}), p)
    d = read_delimited(p)
    assert d.user_map.ids.tolist() == [1, 2] and d.times.tolist() == [3.0, 1.0, 2.0]
    pq.write_table(pa.table({"a": [1], "b": [2]}), tmp_path / "x.parquet")
    with pytest.raises(DataError, match="no user and item column"):
        read_delimited(tmp_path / "x.parquet")


def test_lightgcn_id_maps_and_train_file_siblings(tmp_path):
    d = tmp_path / "lg"
    d.mkdir()
    write(d, "buy_train.txt", "0\t1\t2\n1\t0\n")
    write(d, "buy_test.txt", "0\t0\n1\t2\n")
    write(d, "user_list.txt", "org_id remap_id\nalice 0\nbob 1\n")
    write(d, "item_list.txt", "org_id remap_id\n900 0\n901 1\n902 2\n")
    g = read_lightgcn(d / "buy_train.txt")
    assert g.parts["train"][0].tolist() == ["alice", "alice", "bob"]
    assert g.parts["test"][1].tolist() == [900, 902] and len(g.notes) == 2
    s = load_split(DataConfig(data=str(d / "buy_train.txt"), format="lightgcn"), log=lambda m: 0)
    assert s.user_map.ids.tolist() == ["alice", "bob"] and s.n_items == 3
    write(d, "item_list.txt", "org_id remap_id\n900 0\n901 1\n")
    with pytest.raises(DataError, match=r"buy_train.txt: item id 2 is out of range"):
        read_lightgcn(d / "buy_train.txt")
    with pytest.raises(DataError, match="needs train and test"):
        read_lightgcn(write(d, "other.txt", "0 1\n"))


def test_valid_test_overlap_is_reported(tmp_path):
    d = tmp_path / "lg"
    d.mkdir()
    write(d, "train.txt", "0 1 2 3\n1 1 2\n")
    write(d, "valid.txt", "0 4 5\n1 3\n")
    write(d, "test.txt", "0 4\n1 0 3\n")
    logs = []
    s = load_split(DataConfig(data=str(d)), log=logs.append)
    assert len(s.valid) == 1 and len(s.test) == 3
    assert "valid: dropped 2 pairs also in test" in logs
    assert any("never seen in train" in m for m in logs)


def test_vectorised_lightgcn_reader_matches_line_by_line(tmp_path):
    rng = np.random.default_rng(0)
    lines = [" ".join(map(str, [u, *rng.integers(0, 50, rng.integers(0, 6))])) for u in range(40)]
    p = write(tmp_path, "train.txt", "\n".join(lines) + "\n\n")
    u, i = read_lightgcn_file(p)
    ref = [(int(t[0]), int(x)) for t in (ln.split() for ln in lines) for x in t[1:]]
    assert list(zip(u.tolist(), i.tolist())) == ref


def test_long_string_ids_are_not_cut(tmp_path):
    rows = [f"u{k},i{k}" for k in range(250)] + ["u_" + "x" * 100 + ",i_1"]
    d = read_delimited(write(tmp_path, "long.csv", "\n".join(rows) + "\n"), "user,item")
    assert "u_" + "x" * 100 in d.user_map.ids.tolist() and len(d) == 251


def test_invalid_utf8_is_replaced_not_fatal(tmp_path):
    p = tmp_path / "latin.csv"
    p.write_bytes(b"1,caf\xe9\n2,tea\n")
    d = read_delimited(p, "user,item")
    assert len(d) == 2 and "tea" in d.item_map.ids.tolist()


@pytest.mark.parametrize("text", [
    "user,item,timestamp\n1,2,3\n1,3,4\n2,2,5\n",  # a header: it was refused
    "1,2\n1,3\n2,2\n",  # no header: the first id was '\ufeff1'
    "a,x\nb,y\na,y\n",  # string ids: the first would silently be '\ufeffa'
    "user_id:token\titem_id:token\nu1\ti1\nu2\ti1\n",
])
@pytest.mark.parametrize("gz", [False, True])
def test_byte_order_mark_reads_like_the_plain_file(tmp_path, text, gz):
    """Excel's 'CSV UTF-8' starts the file with a BOM: it loads exactly as without one."""
    import gzip

    name = "f.inter" if "token" in text else "f.csv"
    paths = []
    for stem, data in (("plain", text.encode()), ("bom", b"\xef\xbb\xbf" + text.encode())):
        p = tmp_path / (f"{stem}_{name}" + (".gz" if gz else ""))
        p.write_bytes(gzip.compress(data) if gz else data)
        paths.append(p)
    plain, bom = (read_table(p) for p in paths)
    assert plain.keys() == bom.keys()
    for k in plain:
        assert plain[k].dtype == bom[k].dtype and plain[k].tolist() == bom[k].tolist()


def test_byte_order_mark_in_lightgcn_files(tmp_path):
    d = tmp_path / "lg"
    d.mkdir()
    (d / "train.txt").write_bytes(b"\xef\xbb\xbf0 1 2\n1 2 3\n")
    (d / "test.txt").write_bytes(b"\xef\xbb\xbf0 3\n1 0\n")
    (d / "user_list.txt").write_bytes(b"\xef\xbb\xbforg_id remap_id\nalice 0\nbob 1\n")
    g = read_lightgcn(d)
    assert g.parts["train"][0].tolist() == ["alice", "alice", "bob", "bob"]
    assert g.parts["test"][0].tolist() == ["alice", "bob"]


def test_repeated_column_names_its_origin(tmp_path):
    with pytest.raises(DataError, match=r"dup.csv:1: the header repeats column 'user'") as e:
        read_table(write(tmp_path, "dup.csv", "user,user,item\n1,1,2\n2,2,3\n"))
    assert "--columns" not in str(e.value)
    with pytest.raises(DataError, match=r"dup2.csv:1: the header repeats column 'user'"):
        read_table(write(tmp_path, "dup2.csv", "user_id,uid,item\n1,1,2\n2,2,3\n"))
    with pytest.raises(DataError, match=r"cols.csv: --columns names the column 'item' twice"):
        read_table(write(tmp_path, "cols.csv", "1,2,3\n2,3,4\n"), "user,item,item")


def test_empty_test_set_names_its_cause(tmp_path):
    from softbpr.split import require_test

    users = np.repeat(np.arange(6), 5)
    d = inter(users, np.arange(30) % 7, np.arange(30))
    for valid in (0.99, 0.1):  # a large valid share leaves one train pair per user
        s = split_interactions(d, "temporal", 0, valid, 0.0, "t", log=lambda m: None)
        with pytest.raises(DataError, match=r"t: no test pairs.*the test share is 0") as e:
            require_test(s)
        assert "fewer than 3" not in str(e.value)
    few = split_interactions(inter([0, 0, 1, 1], [0, 1, 0, 1]), "random", 0, 0.1, 0.1, "f",
                             log=lambda m: None)
    with pytest.raises(DataError, match="every user has fewer than 3 interactions"):
        require_test(few)
    lg = tmp_path / "lg"  # a given split whose test users never occur in train
    lg.mkdir()
    write(lg, "train.txt", "".join(f"{u} {u % 5} {(u + 1) % 5} {(u + 2) % 5}\n"
                                   for u in range(10)))
    write(lg, "test.txt", "".join(f"{u} {u % 5}\n" for u in range(10, 20)))
    s = load_split(DataConfig(data=str(lg)), log=lambda m: None)
    with pytest.raises(DataError, match=r"lg: no test pairs.*no test user appears in train") \
            as e:
        require_test(s)
    assert "fewer than 3" not in str(e.value)
