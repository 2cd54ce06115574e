"""Known public datasets: where to download them, their checksums and counts, and `fetch`.

Each `Dataset` lists its files with their canonical address first (mirrors after it), the
sha256 where it is known and ``None`` where it is not (never guessed: `fetch` then warns that it
cannot verify), and the counts its publishers give. Files land in the cache folder
(`data_home()`: ``$SOFTBPR_DATA``, else the user's cache folder) under ``<name>/``.

`fetch` downloads into ``<file>.part``, resuming it with an HTTP Range request when the server
allows (else restarting cleanly), checks the size and sha256, and only then renames it to the
final name -- a half-written or corrupted file never carries the final name.
Tianchi (Taobao, Tmall) needs a login, so those are fetched ``--from`` a local copy or a mirror.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .data import DataError

_LGCN = "https://raw.githubusercontent.com/kuandeng/LightGCN/b067ec05f16a24e0e1efe63cd82385f0c469af20/Data"
_LGCN_PT = ("https://raw.githubusercontent.com/gusye1234/LightGCN-PyTorch/"
            "947ca2b3b1d2d3545b114145710cb06c4e57b3d2/data")
_GL = "https://files.grouplens.org/datasets/movielens"
_GH = "https://raw.githubusercontent.com"


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable file; `members` extracts files of a zip archive after the download."""

    name: str
    """File name in the dataset's cache folder."""
    urls: tuple[str, ...] = ()
    """Canonical address first, then mirrors; empty when the host needs a login (use --from)."""
    sha256: str | None = None
    """Hex digest, or None when unknown (the download is then not verified, with a warning)."""
    size: int | None = None
    """Bytes, when known."""
    members: tuple[tuple[str, str, str | None], ...] = ()
    """(path inside the archive, local name, sha256 or None) of the files to extract."""

    def local_names(self) -> list[str]:
        return [m[1] for m in self.members] or [self.name]


@dataclass(frozen=True)
class Dataset:
    name: str
    title: str
    page: str
    """Where the publisher describes the data (and, for Tianchi, where to download it)."""
    files: tuple[RemoteFile, ...]
    users: int | None
    items: int | None
    interactions: int | None
    """Counts as published (None = not published / unknown)."""
    counts_source: str
    format: str
    """How `softbpr data prepare NAME` reads it: lightgcn | csv."""
    main: str
    """The file (or train file) that prepare reads; "." for a LightGCN folder."""
    columns: str = "user,item,timestamp"
    """Column names of `main` when it has no header."""
    split: str = "temporal"
    """given (pre-split LightGCN data) | temporal (the paper's protocol)."""
    notes: str = ""
    extra: dict = field(default_factory=dict)
    """Default preprocessing for prepare (e.g. {"user_core": 10})."""

    def needed(self) -> list[str]:
        """Local files that make the dataset usable (archives count by their members)."""
        return [n for f in self.files for n in f.local_names()]

    @property
    def size(self) -> int | None:
        sizes = [f.size for f in self.files]
        return None if None in sizes else sum(sizes)  # type: ignore[arg-type]


def _gh(repo_commit: str, path: str) -> str:
    """Raw address of a file of a GitHub repository at a fixed commit ("owner/repo@sha")."""
    repo, commit = repo_commit.split("@")
    return f"{_GH}/{repo}/{commit}/{path}"


def _lgcn(name: str, sha: dict[str, str | None], size: dict[str, int] | None = None):
    """The four files of a LightGCN-release dataset (kuandeng's repo, LightGCN-PyTorch mirror)."""
    out = []
    for fn in ("train.txt", "test.txt", "user_list.txt", "item_list.txt"):
        urls = (f"{_LGCN}/{name}/{fn}", f"{_LGCN_PT}/{name}/{fn}")
        if fn.endswith("_list.txt"):
            urls = urls[::-1]  # the id lists were checked against LightGCN-PyTorch's copies
        out.append(RemoteFile(fn, urls, sha.get(fn), (size or {}).get(fn)))
    return tuple(out)


_UNKNOWN: dict[str, str | None] = {}  # no verified checksum

DATASETS: dict[str, Dataset] = {d.name: d for d in [
    Dataset(
        name="gowalla", title="Gowalla check-ins, LightGCN/NGCF release (80/20 random split)",
        page="https://github.com/kuandeng/LightGCN/tree/master/Data/gowalla",
        files=_lgcn("gowalla", {
            "train.txt": "7244696fdeb23911319cf7b689f2e15a3c4c92549c873a5677b44e3f13cc3e62",
            "test.txt": "099a2a73924e4b754dc6efd730d764f492321b53c38eb93298850c83acf57be3",
            "user_list.txt": "5344c4d0deef610e1f148f23ad216a0db03b36f88834cd39a06786a672c5f5a1",
            "item_list.txt": "6b186f92890cc3f0c15a6dae5d6285f125a302bb8c5ea0cd9a16cf9c16347139",
        }, {"train.txt": 4633414, "test.txt": 1372559, "user_list.txt": 351203,
            "item_list.txt": 506926}),
        users=29858, items=40981, interactions=1027370,
        counts_source="LightGCN paper Table 1; verified on the files",
        format="lightgcn", main=".", split="given"),
    Dataset(
        name="yelp2018", title="Yelp 2018 challenge, LightGCN release (random split)",
        page="https://github.com/kuandeng/LightGCN/tree/master/Data/yelp2018",
        files=_lgcn("yelp2018", _UNKNOWN),
        users=31668, items=38048, interactions=1561406,
        counts_source="LightGCN paper Table 1 (not verified here)",
        format="lightgcn", main=".", split="given"),
    Dataset(
        name="amazon-book", title="Amazon-book, LightGCN release (random split)",
        page="https://github.com/kuandeng/LightGCN/tree/master/Data/amazon-book",
        files=_lgcn("amazon-book", _UNKNOWN),
        users=52643, items=91599, interactions=2984108,
        counts_source="LightGCN paper Table 1 (not verified here)",
        format="lightgcn", main=".", split="given"),
    Dataset(
        name="ml-100k", title="MovieLens 100K ratings (GroupLens), with timestamps",
        page="https://grouplens.org/datasets/movielens/100k/",
        files=(RemoteFile("ml-100k.zip", (f"{_GL}/ml-100k.zip",), members=(
            ("ml-100k/u.data", "u.data",
             "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490"),
            ("ml-100k/u.item", "u.item",
             "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701"),
            ("ml-100k/u.user", "u.user",
             "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c"),
            ("ml-100k/README", "README",
             "4883b8cf340ed0059971b33f56ad3adc88a40792108ebca3d24aafc4c82e8b52"))),),
        users=943, items=1682, interactions=100000,
        counts_source="GroupLens README; verified on u.data",
        format="csv", main="u.data", columns="user,item,rating,timestamp",
        notes="licence: no redistribution without GroupLens' permission"),
    Dataset(
        name="ml-1m", title="MovieLens 1M ratings (GroupLens), with timestamps",
        page="https://grouplens.org/datasets/movielens/1m/",
        files=(RemoteFile("ml-1m.zip", (f"{_GL}/ml-1m.zip",), members=(
            ("ml-1m/ratings.dat", "ratings.dat", None),
            ("ml-1m/users.dat", "users.dat",
             "1dc3a95300cb19f7c10e027daf29b8cdf1d908dab65b5edfb45950aa389a10a3"),
            ("ml-1m/movies.dat", "movies.dat",
             "0140fc2356357c1a851d0f52e893a1e4d3696df632c4141cea8d5bc3d621f0b9"))),),
        users=6040, items=3706, interactions=1000209, counts_source="GroupLens README",
        format="csv", main="ratings.dat", columns="user,item,rating,timestamp",
        notes="licence: no redistribution without GroupLens' permission"),
    Dataset(
        name="taobao",
        title="Taobao UserBehavior (Tianchi 649): pv/fav/cart/buy with timestamps, 9 days",
        page="https://tianchi.aliyun.com/dataset/649",
        files=(RemoteFile("UserBehavior.csv.zip",
                          members=(("UserBehavior.csv", "UserBehavior.csv", None),)),),
        users=987994, items=4162024, interactions=100150807,
        counts_source="Tianchi dataset page (interactions = behaviour rows)",
        format="csv", main="UserBehavior.csv", columns="user,item,category,behavior,timestamp",
        notes=("Tianchi needs a login: download UserBehavior.csv.zip from the page, then "
               "`softbpr data fetch taobao --from PATH`"),
        extra={"user_core": 10}),
    Dataset(
        name="tmall",
        title="Tmall IJCAI-15 user log (Tianchi 42): click/cart/buy/fav up to Double 11",
        page="https://tianchi.aliyun.com/dataset/42",
        files=(RemoteFile("data_format1.zip", members=(
            ("data_format1/user_log_format1.csv", "user_log_format1.csv", None),)),),
        users=424170, items=1090390, interactions=None,
        counts_source="third-party summaries of user_log_format1.csv (not verified here)",
        format="csv", main="user_log_format1.csv",
        notes=("Tianchi needs a login (the paper links tianchi.aliyun.com/dataset/dataDetail?"
               "dataId=121045); header user_id,item_id,cat_id,seller_id,brand_id,time_stamp "
               "(mmdd),action_type (0 click, 1 cart, 2 buy, 3 fav)"),
        extra={"user_core": 10}),
    Dataset(
        name="taobao-ecomm-dyhatr",
        title="Taobao behaviour sample of DyHATR (click/collect/cart/buy, day-level dates)",
        page="https://github.com/xuehansheng/DyHATR/tree/master/dataset/ecomm",
        files=(RemoteFile(
            "ecomm_edge_train.txt",
            (_gh("xuehansheng/DyHATR@6a5ea141bd40065c8900642af7f7758d90ebed9b",
                 "dataset/ecomm/ecomm_edge_train.txt"),),
            "479af25632faa3299328758509bbb297bef3b1f2f1c09666b1a0ff60c63b8055", 2588520),),
        users=1476, items=34505, interactions=47924,
        counts_source="verified on the file (interactions = distinct pairs of 85,213 rows)",
        format="csv", main="ecomm_edge_train.txt", columns="user,item,behavior,timestamp",
        extra={"user_core": 10}),
    Dataset(
        name="taobao-adclick-nfa",
        title="Taobao display-ad clicks (Tianchi 56) in LightGCN format, NFA repo",
        page="https://github.com/project-NFA/NFA-Pytorch/tree/main/data/taobao",
        files=tuple(RemoteFile(
            fn, (_gh("project-NFA/NFA-Pytorch@933261cf841c6746512d643a5653117d0ee95c87",
                     f"data/taobao/{fn}"),), sha, size) for fn, sha, size in (
            ("train.txt", "3a00644a5cf38ce8893ad11683529f9d58789bc2b4ee452af70995a5bd886301",
             1487799),
            ("test.txt", "2721f1c5b8852dc0876ea288edc4c670c93c34b9105ce8d4468b5dae5afbd39d",
             530356))),
        users=33932, items=24400, interactions=281831, counts_source="verified on the files",
        format="lightgcn", main=".", split="given"),
    Dataset(
        name="tmall-mbcgcn", title="Tmall buys of MB-CGCN (leave-one-out buy test)",
        page="https://github.com/SS-00-SS/MBCGCN/tree/main/Data",
        files=tuple(RemoteFile(
            local, (_gh("SS-00-SS/MBCGCN@931f9c103817cdfa280353c506f4e3cb08306a1c",
                        f"Data/{remote}"),), sha, size) for local, remote, sha, size in (
            ("buy_train.txt", "buy/train.txt",
             "4d8619e44b5292736daff25b18ff9b295893e7521e3d79faff4a62d48dd80e6e", 531627),
            ("buy_test.txt", "buy/test.txt",
             "aa643ff3e3f072238740b684277e65ee2eaeecdcd3c5ec1134756d4adfb1672b", 157169))),
        users=15449, items=11903, interactions=107629,
        counts_source="verified on the files (buy train + buy test; 11,944 items with carts)",
        format="lightgcn", main="buy_train.txt", split="given"),
]}


def data_home() -> Path:
    """The cache folder: ``$SOFTBPR_DATA``, else the platform's user cache folder + softbpr."""
    env = os.environ.get("SOFTBPR_DATA")
    if env:
        return Path(env).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
        return base / "softbpr" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "softbpr"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "softbpr"


def get(name: str) -> Dataset:
    if name not in DATASETS:
        import difflib

        close = difflib.get_close_matches(name, DATASETS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise DataError(f"unknown dataset {name!r}{hint} Known: {', '.join(DATASETS)}")
    return DATASETS[name]


def folder(name: str, home: Path | None = None) -> Path:
    return (home or data_home()) / name


def is_cached(ds: Dataset, home: Path | None = None) -> bool:
    d = folder(ds.name, home)
    return all((d / n).exists() for n in ds.needed())


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _human(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return "?"


def table(home: Path | None = None) -> list[dict]:
    """One row per known dataset: name, size, counts, whether it is in the cache."""
    rows = []
    for ds in DATASETS.values():
        fmt = lambda x: "?" if x is None else f"{x:,}"
        rows.append({"name": ds.name, "size": _human(ds.size), "users": fmt(ds.users),
                     "items": fmt(ds.items), "interactions": fmt(ds.interactions),
                     "cached": "yes" if is_cached(ds, home) else "no", "title": ds.title})
    return rows


# ----------------------------------------------------------------------------------------------
# Download


def _progress(total: int | None, desc: str, initial: int, quiet: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="B", unit_scale=True,
                unit_divisor=1024, disable=quiet, file=sys.stderr, leave=False)


def _download(url: str, part: Path, log: Callable[[str], None], quiet: bool,
              timeout: float = 30.0) -> None:
    """Download `url` into `part`, resuming what `part` already holds when the server allows.

    A server that ignores the Range header (status 200) or rejects it (416) gets a clean
    restart. Raises OSError/urllib errors on a broken connection, leaving `part` for a resume.
    """
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "softbpr-data-fetch"}
    if have:
        headers["Range"] = f"bytes={have}-"
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:
            log(f"{part.name}: the server cannot resume at byte {have:,}; restarting")
            part.unlink()
            return _download(url, part, log, quiet, timeout)
        raise
    with resp:
        if have and resp.status != 206:
            log(f"{part.name}: the server does not resume downloads; restarting from byte 0")
            have = 0
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        with open(part, "ab" if have else "wb") as out, \
                _progress(total, part.name[:-5], have, quiet) as bar:
            while block := resp.read(1 << 16):
                out.write(block)
                bar.update(len(block))
        got = part.stat().st_size
        if total is not None and got < total:  # the body stopped short without an exception
            raise urllib.error.ContentTooShortError(
                f"{url}: got {got:,} of {total:,} bytes", None)


def _is_url(s: str) -> bool:
    return s.split(":", 1)[0].lower() in ("http", "https", "file")


def _sources(f: RemoteFile, src: str | None) -> list[str]:
    """Addresses to try for `f`: the --from location (a file, a folder or a URL) or its urls."""
    if src is None:
        return list(f.urls)
    if _is_url(src):
        return [src + f.name if src.endswith("/") else src]
    p = Path(src).expanduser()
    if p.is_dir():
        return [str(p / f.name)]
    return [str(p)]


def fetch_file(f: RemoteFile, dest_dir: Path, src: str | None = None,
               log: Callable[[str], None] = print, quiet: bool = False,
               retries: int = 3) -> Path:
    """Bring `f` into `dest_dir` (download, copy or resume), verified; returns its final path."""
    dest = dest_dir / f.name
    if dest.exists() and (src is None) and _verify(dest, f, log, quiet_ok=True):
        return dest
    sources = _sources(f, src)
    if not sources:
        raise DataError(f"{f.name}: no download address (the host needs a login); download it "
                        "yourself and pass --from PATH (the file or its folder) or --from URL")
    part = dest_dir / (f.name + ".part")
    last: Exception | None = None
    for source in sources:
        if not _is_url(source):
            p = Path(source)
            if not p.is_file():
                raise DataError(f"--from {source}: no such file")
            log(f"{f.name}: copying from {p}")
            shutil.copyfile(p, part)
            return _finish(part, dest, f, log)
        for attempt in range(retries + 1):
            try:
                log(f"{f.name}: downloading {source}"
                    + (f" (resuming at {part.stat().st_size:,} bytes)" if part.exists() else ""))
                _download(source, part, log, quiet)
                return _finish(part, dest, f, log)
            except _Mismatch as e:
                last = e
                break  # corrupted at the source: do not retry it, try the next address
            except urllib.error.HTTPError as e:
                last = e
                if e.code < 500:
                    break  # 404 and the like will not change on a retry
            except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
                last = e
                if attempt < retries:
                    log(f"{f.name}: download interrupted ({e}); retrying")
                    time.sleep(min(2.0 ** attempt, 10.0) * 0.1)
        log(f"{f.name}: {source} failed: {last}")
    raise DataError(f"{f.name}: could not be fetched ({last})")


class _Mismatch(DataError):
    """The downloaded bytes do not match the catalogue's size or sha256."""


def _verify(path: Path, f: RemoteFile, log, quiet_ok=False) -> bool:
    if f.sha256 is None:
        if not quiet_ok:
            log(f"warning: {path.name}: no known sha256, so the file cannot be verified "
                f"(sha256 {sha256_of(path)})")
        return True
    return sha256_of(path) == f.sha256


def _finish(part: Path, dest: Path, f: RemoteFile, log) -> Path:
    """Check size and checksum of the finished `part`, then rename it to `dest` (atomic)."""
    size = part.stat().st_size
    if f.size is not None and size != f.size:
        part.unlink()
        raise _Mismatch(f"{f.name}: {size:,} bytes instead of {f.size:,}; the download was "
                        "removed")
    if f.sha256 is not None:
        got = sha256_of(part)
        if got != f.sha256:
            part.unlink()
            raise _Mismatch(f"{f.name}: sha256 mismatch (expected {f.sha256}, got {got}); the "
                            "corrupted download was removed")
        log(f"{f.name}: sha256 verified")
    else:
        _verify(part, f, log)
    os.replace(part, dest)
    return dest


def _extract(archive: Path, f: RemoteFile, dest_dir: Path, log,
             what: str | None = None) -> None:
    """Extract `f.members`; DataError naming the archive (`what`, default its name) when it is
    not a zip, truncated or corrupt, or lacks a member."""
    what = what or archive.name
    tmp = None
    try:
        with zipfile.ZipFile(archive) as z:
            names = set(z.namelist())
            for inner, local, sha in f.members:
                if inner not in names:
                    raise DataError(f"{what}: has no member {inner!r}")
                tmp = dest_dir / (local + ".part")
                with z.open(inner) as src, open(tmp, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
                if sha is not None and sha256_of(tmp) != sha:
                    tmp.unlink()
                    raise DataError(f"{what}: {inner} does not match its known sha256")
                os.replace(tmp, dest_dir / local)
                log(f"{local}: extracted" + (" (sha256 verified)" if sha else ""))
    except (zipfile.BadZipFile, EOFError, zlib.error) as e:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise DataError(f"{what}: not a valid zip archive, truncated or corrupt ({e})") from None


def _is_from_file(path: Path, src: str | None) -> bool:
    """Whether `path` (in the cache) is the user's own --from file itself."""
    if src is None:
        return False
    if _is_url(src):
        if not src.lower().startswith("file:"):
            return False
        src = urllib.request.url2pathname(urllib.parse.urlparse(src).path)
    p = Path(src).expanduser()
    p = p / path.name if p.is_dir() else p
    return p.resolve() == path.resolve()


def fetch(name: str, src: str | None = None, home: Path | None = None,
          log: Callable[[str], None] = print, quiet: bool = False) -> Path:
    """Download (or copy `src`) every file of dataset `name` into its cache folder."""
    ds = get(name)
    d = folder(name, home)
    d.mkdir(parents=True, exist_ok=True)
    for f in ds.files:
        if f.members and src is not None and not _is_url(src):
            # a local copy of an archive member itself (e.g. the unzipped UserBehavior.csv)
            p = Path(src).expanduser()
            cands = [p / m[1] for m in f.members] if p.is_dir() else [p]
            if all(c.is_file() and c.name in f.local_names() for c in cands):
                for c, (_, local, sha) in zip(cands, f.members):
                    fetch_file(RemoteFile(local, (), sha), d, str(c), log, quiet)
                continue
        if f.members and all((d / n).exists() for n in f.local_names()) and src is None:
            continue
        path = fetch_file(f, d, src, log, quiet)
        if f.members:
            try:
                _extract(path, f, d, log, f"--from {src}" if src is not None else str(path))
            except DataError as e:
                if _is_from_file(path, src):  # never remove the user's own file
                    raise
                path.unlink(missing_ok=True)  # else every later fetch would fail alike
                raise DataError(f"{e}; the bad copy was removed from the cache, so the next "
                                f"`softbpr data fetch {name}` starts clean") from None
    meta = {"name": name, "fetched": time.strftime("%Y-%m-%dT%H:%M:%S"), "from": src,
            "files": {n: (d / n).stat().st_size for n in ds.needed()}}
    (d / "fetch.json").write_text(json.dumps(meta, indent=2) + "\n")
    log(f"{name}: ready in {d}")
    return d
