"""Dataset catalogue and `fetch`, exercised against a local HTTP server on 127.0.0.1 only."""

from __future__ import annotations

import hashlib
import http.server
import io
import re
import threading
import zipfile

import pytest
from conftest import SHARED_DATA

from softbpr import catalog
from softbpr.catalog import DATASETS, Dataset, RemoteFile, fetch, fetch_file
from softbpr.data import DataError

GOOD = bytes(range(256)) * 400  # 102,400 bytes
SHA = hashlib.sha256(GOOD).hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    """/ok/F: Range-capable; /cut/F: the first answer stops halfway; /norange/F: ignores Range;
    /bad/F: other bytes than GOOD. Every request is recorded on the server."""

    def log_message(self, *a):  # keep the test output clean
        pass

    def do_GET(self):
        srv = self.server
        srv.requests.append((self.path, self.headers.get("Range")))
        kind, _, name = self.path.strip("/").partition("/")
        body = srv.files.get(name)
        if body is None:
            self.send_error(404)
            return
        if kind == "bad":
            body = body[:-1] + b"X"
        rng = self.headers.get("Range")
        start = int(re.match(r"bytes=(\d+)-", rng).group(1)) if rng and kind != "norange" else 0
        if start >= len(body) and start:
            self.send_response(416)
            self.end_headers()
            return
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if kind == "cut" and not srv.cut_done.get(name):
            srv.cut_done[name] = True
            self.wfile.write(body[start:start + (len(body) - start) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body[start:])


@pytest.fixture(scope="module")
def _server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def server(_server):
    _server.files, _server.requests, _server.cut_done = {"f.bin": GOOD}, [], {}
    return _server


def quiet_fetch(f, d, src=None):
    logs: list[str] = []
    path = fetch_file(f, d, src, log=logs.append, quiet=True)
    return path, logs


def test_download_verifies_and_leaves_no_part(server, tmp_path):
    f = RemoteFile("f.bin", (f"{server.url}/ok/f.bin",), SHA, len(GOOD))
    path, logs = quiet_fetch(f, tmp_path)
    assert path.read_bytes() == GOOD and any("verified" in m for m in logs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]
    n = len(server.requests)
    quiet_fetch(f, tmp_path)  # cached and verified: no second download
    assert len(server.requests) == n


def test_corrupted_download_is_removed(server, tmp_path):
    f = RemoteFile("f.bin", (f"{server.url}/bad/f.bin",), SHA, len(GOOD))
    with pytest.raises(DataError, match="sha256 mismatch"):
        quiet_fetch(f, tmp_path)
    assert list(tmp_path.iterdir()) == []  # neither f.bin nor f.bin.part


def test_cut_download_resumes_with_range(server, tmp_path):
    f = RemoteFile("f.bin", (f"{server.url}/cut/f.bin",), SHA, len(GOOD))
    path, logs = quiet_fetch(f, tmp_path)
    assert path.read_bytes() == GOOD
    assert any("interrupted" in m for m in logs)
    assert server.requests[-1][1] == f"bytes={len(GOOD) // 2}-"  # resumed, not restarted
    assert not (tmp_path / "f.bin.part").exists()


def test_stale_part_restarts_cleanly_without_range_support(server, tmp_path):
    (tmp_path / "f.bin.part").write_bytes(b"garbage" * 10)
    f = RemoteFile("f.bin", (f"{server.url}/norange/f.bin",), SHA, len(GOOD))
    path, logs = quiet_fetch(f, tmp_path)
    assert path.read_bytes() == GOOD and any("restarting" in m for m in logs)


def test_stale_part_longer_than_file_restarts(server, tmp_path):
    (tmp_path / "f.bin.part").write_bytes(b"x" * (len(GOOD) + 5))
    f = RemoteFile("f.bin", (f"{server.url}/ok/f.bin",), SHA, len(GOOD))
    path, _ = quiet_fetch(f, tmp_path)
    assert path.read_bytes() == GOOD


def test_unknown_checksum_warns_and_mirror_is_tried(server, tmp_path):
    f = RemoteFile("f.bin", (f"{server.url}/ok/missing.bin", f"{server.url}/ok/f.bin"), None)
    path, logs = quiet_fetch(f, tmp_path)
    assert path.read_bytes() == GOOD
    assert any("cannot be verified" in m and SHA in m for m in logs)


def test_from_local_file_folder_and_url(server, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f.bin").write_bytes(GOOD)
    f = RemoteFile("f.bin", (), SHA)
    for i, where in enumerate([str(src / "f.bin"), str(src), f"{server.url}/ok/"]):
        d = tmp_path / f"d{i}"
        d.mkdir()
        path, _ = quiet_fetch(f, d, where)
        assert path.read_bytes() == GOOD
    with pytest.raises(DataError, match="--from"):
        quiet_fetch(RemoteFile("g.bin", ()), tmp_path / "d0")  # no address: needs --from


def test_fetch_dataset_with_archive_members(server, tmp_path, monkeypatch):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("toy/ratings.tsv", "1\t10\t5\t100\n1\t11\t3\t101\n2\t10\t4\t102\n")
    server.files["toy.zip"] = buf.getvalue()
    member_sha = hashlib.sha256(b"1\t10\t5\t100\n1\t11\t3\t101\n2\t10\t4\t102\n").hexdigest()
    ds = Dataset("toy", "toy", "-", (RemoteFile("toy.zip", (f"{server.url}/ok/toy.zip",), None,
                                                None, (("toy/ratings.tsv", "r.tsv", member_sha),)),),
                 2, 2, 3, "-", "csv", "r.tsv", "user,item,rating,timestamp")
    monkeypatch.setitem(DATASETS, "toy", ds)
    monkeypatch.setenv("SOFTBPR_DATA", str(tmp_path / "cache"))
    d = fetch("toy", log=lambda m: None, quiet=True)
    assert d == tmp_path / "cache" / "toy" and (d / "r.tsv").read_text().startswith("1\t10")
    assert catalog.is_cached(ds) and not list(d.glob("*.part"))
    assert {r["name"]: r["cached"] for r in catalog.table()}["toy"] == "yes"


def test_catalogue_entries_are_well_formed():
    for ds in DATASETS.values():
        assert ds.format in ("lightgcn", "csv") and ds.split in ("given", "temporal")
        for f in ds.files:
            shas = [f.sha256] + [m[2] for m in f.members]
            assert all(s is None or re.fullmatch(r"[0-9a-f]{64}", s) for s in shas), ds.name
            assert all(u.startswith("https://") for u in f.urls)
            assert f.urls or "login" in ds.notes  # no address only for login-walled hosts
    with pytest.raises(DataError, match="did you mean 'gowalla'"):
        catalog.get("gowala")


def test_catalogue_checksums_match_the_shared_copies():
    """Where /work/shared/data holds the same files, their sha256 is the catalogue's."""
    checked = 0
    for ds in DATASETS.values():
        d = SHARED_DATA / ds.name
        for f in ds.files:
            for local, sha in [(f.name, f.sha256)] + [(m[1], m[2]) for m in f.members]:
                if sha and (d / local).exists():
                    assert catalog.sha256_of(d / local) == sha, (ds.name, local)
                    checked += 1
    if checked == 0:
        pytest.skip("no shared data beside this checkout")
    assert checked >= 10


def test_data_home(monkeypatch, tmp_path):
    monkeypatch.setenv("SOFTBPR_DATA", str(tmp_path))
    assert catalog.data_home() == tmp_path
    monkeypatch.delenv("SOFTBPR_DATA")
    assert "softbpr" in str(catalog.data_home())


@pytest.mark.parametrize("body", [b"not a zip at all\n", b"PK\x03\x04garbage", "half", "crc"])
def test_bad_archive_is_one_line_and_leaves_the_cache_clean(tmp_path, monkeypatch, capsys,
                                                            body):
    """`data fetch ml-100k --from fake.zip`: one line naming the file (exit 4, no traceback);
    the bad copy leaves the cache, so that the next fetch starts clean; --from stays."""
    from softbpr.cli import main

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("ml-100k/u.data", "1\t10\t5\t100\n" * 500)
    good = buf.getvalue()
    if body == "half":
        body = good[:len(good) // 2]
    elif body == "crc":  # a whole archive whose member's bytes are damaged
        body = bytearray(good)
        body[60:80] = bytes(20)
        body = bytes(body)
    monkeypatch.setenv("SOFTBPR_DATA", str(tmp_path / "cache"))
    fake = tmp_path / "fake.zip"
    fake.write_bytes(body)
    assert main(["data", "fetch", "ml-100k", "--from", str(fake), "--quiet"]) == 4
    err = capsys.readouterr().err
    assert err.startswith("softbpr: error: --from ") and len(err.splitlines()) == 1, err
    assert str(fake) in err and "not a valid zip archive" in err and "removed" in err
    cache = tmp_path / "cache" / "ml-100k"
    assert fake.read_bytes() == body  # the user's file is untouched
    assert sorted(p.name for p in cache.iterdir()) == []  # no archive, no .part left
    # the user's own file inside the cache (--from its folder) is never removed
    cache.joinpath("ml-100k.zip").write_bytes(body)
    assert main(["data", "fetch", "ml-100k", "--from", str(cache), "--quiet"]) == 4
    assert cache.joinpath("ml-100k.zip").read_bytes() == body
    capsys.readouterr()


def test_bad_cached_archive_is_removed_so_the_next_fetch_starts_clean(server, tmp_path,
                                                                      monkeypatch):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("toy/ratings.tsv", "1\t10\t5\t100\n")
    server.files["toy.zip"] = buf.getvalue()
    ds = Dataset("toy", "toy", "-", (RemoteFile("toy.zip", (f"{server.url}/ok/toy.zip",),
                                                members=(("toy/ratings.tsv", "r.tsv", None),)),),
                 1, 1, 1, "-", "csv", "r.tsv", "user,item,rating,timestamp")
    monkeypatch.setitem(DATASETS, "toy", ds)
    monkeypatch.setenv("SOFTBPR_DATA", str(tmp_path / "cache"))
    d = tmp_path / "cache" / "toy"
    d.mkdir(parents=True)
    (d / "toy.zip").write_bytes(b"PK\x03\x04garbage")  # a bad archive left in the cache
    with pytest.raises(DataError, match=r"toy\.zip: not a valid zip archive.*removed"):
        fetch("toy", log=lambda m: None, quiet=True)
    assert not (d / "toy.zip").exists()
    fetch("toy", log=lambda m: None, quiet=True)  # downloads afresh
    assert (d / "r.tsv").read_text() == "1\t10\t5\t100\n"
