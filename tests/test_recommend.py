"""Using a trained model: recommend / export from the CLI and the Python API, on external ids.

One tiny run is trained once per module on a csv whose ids are NOT 0..n-1: users are strings
("u_a", ...) and items are large integers (900000000001, ...).
"""

from __future__ import annotations

import builtins
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import softbpr
from softbpr.cli import main
from softbpr.recommend import Recommender

DOC = Path(__file__).resolve().parents[1] / "docs" / "using-a-model.md"
N_USERS, N_ITEMS, PER_USER = 30, 24, 8
ITEM0 = 900_000_000_001


def write_csv(path: Path) -> Path:
    """Two taste blocks, 8 distinct items per user; item ITEM0 + 0 is liked by every user."""
    rng = np.random.default_rng(7)
    lines = ["user,item"]
    for u in range(N_USERS):
        block = np.arange(1, N_ITEMS // 2) if u % 2 else np.arange(N_ITEMS // 2, N_ITEMS)
        liked = [0, *rng.choice(block, size=PER_USER - 1, replace=False).tolist()]
        lines += [f"u_{chr(97 + u % 26)}{u // 26 or ''},{ITEM0 + i}" for i in liked]
    path.write_text("\n".join(lines) + "\n")
    return path


def train_args(csv: Path, out: Path) -> list[str]:
    return ["train", "--data", str(csv), "--split", "random", "--epochs", "2", "--dim", "8",
            "--batch-size", "256", "--device", "cpu", "--quiet", "--out", str(out)]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("rec")
    out = d / "run"
    assert main(train_args(write_csv(d / "data.csv"), out)) == 0
    return out


@pytest.fixture(scope="module")
def rec(run_dir) -> Recommender:
    return softbpr.load_recommender(run_dir, "cpu")


def test_external_ids_round_trip(rec):
    assert rec.user_ids.dtype.kind == "U" and "u_a" in rec.user_ids.tolist()
    assert rec.item_ids.dtype == np.int64 and rec.item_ids.min() == ITEM0
    assert rec.user_embeddings.shape == (N_USERS, 8)
    assert rec.item_embeddings.shape == (N_ITEMS, 8)
    out = rec.recommend(["u_a", "u_b"], k=4)
    assert [r.user for r in out] == ["u_a", "u_b"]
    for r in out:
        assert r.source == "model" and len(r.items) == 4 and r.scores.dtype == np.float32
        assert set(r.items.tolist()) <= set(rec.item_ids.tolist())
        assert np.all(np.diff(r.scores) <= 0)  # best first
    # item ids given as strings ("900000000001") find the integer ids
    s = rec.score(["u_a"], [str(ITEM0 + 1), ITEM0 + 1])
    assert s.shape == (1, 2) and s[0, 0] == s[0, 1]


def test_seen_items_excluded_unless_asked(rec):
    k = N_ITEMS  # ask for everything: only unseen items can come back
    for user in rec.user_ids.tolist():
        seen = set(rec.seen(user).tolist())
        assert len(seen) >= 4
        (r,) = rec.recommend([user], k=k)
        assert not seen & set(r.items.tolist())
        assert len(r.items) == N_ITEMS - len(seen)
        (a,) = rec.recommend([user], k=k, exclude_seen=False)
        assert seen <= set(a.items.tolist()) and len(a.items) == N_ITEMS
    # with include-seen the top item is the overall best score, seen or not
    (a,) = rec.recommend("u_a", k=1, exclude_seen=False)
    full = rec.score(["u_a"], rec.item_ids)[0]
    assert a.scores[0] == pytest.approx(full.max(), abs=1e-6)


def test_matches_the_evaluation_top_k(rec):
    # the same lists as a brute-force numpy ranking with train items at -inf
    U, V = rec.user_embeddings, rec.item_embeddings
    for u, user in enumerate(rec.user_ids.tolist()[:5]):
        s = U[u] @ V.T
        s[np.isin(rec.item_ids, rec.seen(user))] = -np.inf
        (r,) = rec.recommend(user, k=5)
        np.testing.assert_allclose(r.scores, np.sort(s)[::-1][:5], atol=1e-5)


def test_unknown_users_and_popular_fallback(rec, run_dir):
    with pytest.raises(KeyError, match="unknown user 'nobody'"):
        rec.recommend(["u_a", "nobody"])
    assert not rec.has_user("nobody") and rec.has_user("u_a")
    out = rec.recommend(["nobody", "u_a"], k=3, fallback="popular")
    assert [r.source for r in out] == ["popular", "model"] and out[0].user == "nobody"
    # ITEM0 is in every user's data, so it has the most train interactions
    assert out[0].items[0] == ITEM0
    assert np.all(np.diff(out[0].scores) <= 0)
    counts = dict(zip(rec.item_ids.tolist(), rec.popularity.tolist()))
    assert out[0].scores.tolist() == [counts[i] for i in out[0].items.tolist()]
    with pytest.raises(ValueError, match="unknown fallback"):
        rec.recommend(["u_a"], fallback="random")
    with pytest.raises(KeyError, match="item id 5 is not in this run's data"):
        rec.score(["u_a"], [5])


def test_cli_unknown_user(run_dir, capsys):
    code = main(["recommend", str(run_dir), "--user", "u_a", "--user", "ghost", "--k", "3",
                 "--format", "json"])
    cap = capsys.readouterr()
    assert code == 1
    err = cap.err.strip()
    assert len(err.splitlines()) == 1 and "unknown user" in err and "'ghost'" in err
    recs = json.loads(cap.out)
    assert [r["user"] for r in recs] == ["u_a"] and len(recs[0]["items"]) == 3  # known still out

    code = main(["recommend", str(run_dir), "--user", "ghost", "--k", "3", "--fallback",
                 "popular", "--format", "csv"])
    cap = capsys.readouterr()
    assert code == 0 and "popular items" in cap.err
    rows = cap.out.strip().splitlines()
    assert rows[0] == "user,rank,item,score,source"
    assert rows[1].startswith(f"ghost,1,{ITEM0},") and rows[1].endswith(",popular")
    assert len(rows) == 4

    assert main(["recommend", str(run_dir)]) == 2
    assert "--user" in capsys.readouterr().err


def test_cli_table_and_users_file(run_dir, tmp_path, capsys):
    f = tmp_path / "users.txt"
    f.write_text("u_a\n\nu_b\n")
    assert main(["recommend", str(run_dir), "--users-file", str(f), "--user", "u_c",
                 "--k", "2", "--include-seen"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ["user", "rank", "item", "score", "source"]
    assert [ln.split()[:2] for ln in lines[1:]] == [
        ["u_c", "1"], ["u_c", "2"], ["u_a", "1"], ["u_a", "2"], ["u_b", "1"], ["u_b", "2"]]
    f.write_bytes(b"\xef\xbb\xbfu_a\nu_b\n")  # a byte order mark (Excel, Notepad) is no id
    assert main(["recommend", str(run_dir), "--users-file", str(f), "--k", "2"]) == 0
    assert [ln.split()[0] for ln in capsys.readouterr().out.strip().splitlines()[1::2]] == [
        "u_a", "u_b"]


def test_fresh_process_recommend(run_dir, rec):
    p = subprocess.run([sys.executable, "-m", "softbpr", "recommend", str(run_dir), "--user",
                        "u_a", "--user", "u_b", "--k", "5", "--format", "json",
                        "--device", "cpu"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout)
    want = rec.recommend(["u_a", "u_b"], k=5)
    for g, w in zip(got, want):
        assert g["user"] == w.user and g["source"] == "model"
        assert g["items"] == w.items.tolist()  # ints stay ints in JSON
        np.testing.assert_allclose(g["scores"], w.scores, atol=1e-6)


def test_export_npz_matches_score(run_dir, rec, tmp_path, capsys):
    out = tmp_path / "emb.npz"
    assert main(["export", str(run_dir), "--out", str(out), "--device", "cpu"]) == 0
    assert str(out) in capsys.readouterr().out
    z = np.load(out)  # no pickle needed: string ids are a unicode array
    assert set(z.files) == {"user_ids", "item_ids", "user_embeddings", "item_embeddings"}
    assert z["user_ids"].tolist() == rec.user_ids.tolist()
    assert z["item_ids"].tolist() == rec.item_ids.tolist()
    users, items = ["u_b", "u_a"], [ITEM0 + 3, ITEM0, ITEM0 + 20]
    ui = [z["user_ids"].tolist().index(u) for u in users]
    ii = [z["item_ids"].tolist().index(i) for i in items]
    dots = z["user_embeddings"][ui] @ z["item_embeddings"][ii].T
    np.testing.assert_allclose(rec.score(users, items), dots, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="unknown export format"):
        rec.export(tmp_path / "emb.txt")


def test_export_parquet_without_pyarrow(rec, tmp_path, monkeypatch, run_dir, capsys):
    real = builtins.__import__

    def no_pyarrow(name, *a, **kw):
        if name == "pyarrow" or name.startswith("pyarrow."):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return real(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    assert main(["export", str(run_dir), "--out", str(tmp_path / "e.parquet")]) == 6  # EXIT_ENV
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "needs pyarrow" in err
    assert not list(tmp_path.iterdir())


def test_export_parquet(rec, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    files = rec.export(tmp_path / "e.parquet")
    assert [f.name for f in files] == ["e.users.parquet", "e.items.parquet"]
    users, items = pq.read_table(files[0]), pq.read_table(files[1])
    assert users.column("id").to_pylist() == rec.user_ids.tolist()
    assert items.column("id").to_pylist() == rec.item_ids.tolist()
    np.testing.assert_array_equal(np.array(items.column("embedding").to_pylist(), np.float32),
                                  rec.item_embeddings)


def test_embeddings_are_read_only_snapshots(run_dir):
    run_rec = softbpr.load_recommender(run_dir, "cpu")
    with pytest.raises(ValueError):
        run_rec.user_embeddings[0, 0] = 1.0


def test_train_function_and_trainer_module():
    import softbpr.trainer as tr

    assert callable(softbpr.train) and softbpr.fit is tr.fit


def test_doc_python_blocks_run(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    ns = {"data_file": str(write_csv(tmp_path / "d.csv")), "run_dir": str(tmp_path / "run")}
    for code in blocks:
        exec(compile(code, str(DOC), "exec"), ns)
    assert (tmp_path / "embeddings.npz").exists()
    assert "popular" in capsys.readouterr().out


def test_rank_by_cosine_in_evaluation_and_serving(tmp_path):
    """--rank-by cosine: the run's test metrics are those of the unit-length vectors, its
    embeddings.npz holds them, and the Recommender built from the run serves that ranking."""
    from softbpr.evaluate import ranking_vectors
    out = tmp_path / "cos"
    assert main([*train_args(write_csv(tmp_path / "data.csv"), out), "--rank-by", "cosine"]) == 0
    rec = softbpr.load_recommender(out, "cpu")
    assert rec.rank_by == "cosine"
    norms = np.linalg.norm(rec.item_embeddings, axis=1)
    assert np.allclose(norms[norms > 0], 1.0, atol=1e-5)
    z = np.load(out / "embeddings.npz")
    assert np.allclose(z["item_embeddings"], rec.item_embeddings, atol=1e-6)
    # the run's test metrics: the checkpoint's raw vectors, normalised, through rank_metrics
    from softbpr.checkpoint import load_checkpoint
    from softbpr.graph import InteractionGraph
    from softbpr.trainer import evaluate_model
    exp, model, split, _ = load_checkpoint(out, "cpu")
    graph = InteractionGraph.from_pairs(split.train, split.n_users, split.n_items, "cpu")
    res = json.loads((out / "result.json").read_text())["test"]
    cos = evaluate_model(model, graph, split, "test", exp.eval.topk, rank_by="cosine")
    dot = evaluate_model(model, graph, split, "test", exp.eval.topk)
    assert all(abs(cos[k] - res[k]) < 1e-9 for k in res)
    # the served vectors are the evaluated ones: the propagated rows, normalised
    emb = model.propagate(graph)
    uc, ic = ranking_vectors(emb.user, emb.item, "cosine")
    assert np.allclose(rec.user_embeddings, uc.detach().numpy(), atol=1e-6)
    assert np.allclose(rec.item_embeddings, ic.detach().numpy(), atol=1e-6)
    assert not np.allclose(rec.item_embeddings, emb.item.detach().numpy(), atol=1e-3)
    dot = evaluate_model(model, graph, split, "test", exp.eval.topk)
    assert abs(cos["ndcg@20"] - dot["ndcg@20"]) > 1e-3  # the two rankings differ on this data
