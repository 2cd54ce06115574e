"""Seconds per training epoch of softbpr and of RecBole 1.2.1, LightGCN + DNS(32), side by side.

    python bench/speed_vs_recbole.py                          # ml-100k and Gowalla, 1 thread
    python bench/speed_vs_recbole.py --threads 1,2 --rounds 5
    python bench/speed_vs_recbole.py --datasets ml-100k --epochs 6
    python bench/speed_vs_recbole.py --recbole-python /path/to/venv/bin/python
    python bench/speed_vs_recbole.py --softbpr-src src --softbpr-src /tmp/old/src  # two trees

Both tools train the same LightGCN (d = 64, L = 3, batch 2048, Adam lr 1e-3, L2 1e-4 on the
batch's layer-0 rows) with DNS(H = 32) negatives on the same LightGCN-format train.txt, each in
its own process with the same thread count (OMP_NUM_THREADS / MKL_NUM_THREADS, and RecBole's
--threads): softbpr through `softbpr.fit` (no validation share, so all 80,000 / 810,128 train
pairs are trained on; nothing written), RecBole through the harness in ../shared/peers/recbole
(run_recbole.py; its README says how to install RecBole's environment). The runs alternate
(the order reverses every round) so that all tools see the same machine load; each round gives
one ratio per softbpr tree (RecBole's seconds per epoch / softbpr's), and the table shows the
median and range of those ratios.

Two clocks per epoch: `wall`, the training seconds each tool reports (RecBole's train_s,
softbpr's train_seconds), and `cpu`, the process's CPU seconds (/proc/PID/stat, read when the
tool reports the epoch; differences between consecutive epochs). On a machine that other work
keeps busy, wall seconds swing with the scheduler while one-thread CPU seconds stay put: with
--threads 1 the cpu ratio is the robust one (with several threads CPU time also counts the
threads' spin-waiting). Epochs 2 .. E-1 of every run are measured (the first is a warm-up, the
last includes RecBole's evaluation): give --epochs >= 3.

Data:
  ml-100k  the fixed 80/20 split of the harness's make_ml100k_split.py (MovieLens-100K, per-user
           seeded 20 % test), written to a temporary folder: with RecBole's environment by that
           script; without it, from ../shared/data/ml-100k/u.data by the same procedure (the
           files are identical). Full epochs (40 batches).
  gowalla  ../shared/data/gowalla (the LightGCN split). An epoch is 396 batches, about ten
           minutes of RecBole: both tools train --max-batches batches per epoch (default 10) and
           the epoch time is the measured seconds per batch times the batches of a full epoch.

Without RecBole's environment (no python given, none in $SOFTBPR_RECBOLE_PYTHON, none at
../shared/peers/recbole/.venv) the RecBole side is skipped with a message and softbpr alone is
timed. --out appends every measurement as JSON lines.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
HARNESS = SHARED / "peers" / "recbole"
DATA = SHARED / "data"
# the protocol both tools run (RecBole's harness defaults; softbpr's flags spell them out)
PROTOCOL = {"dim": 64, "layers": 3, "batch": 2048, "lr": 1e-3, "reg": 1e-4, "H": 32,
            "seed": 2020}


def machine() -> str:
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores"


def load_avg() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def recbole_python(given: str | None) -> tuple[str | None, str]:
    """(python of RecBole's environment, or None; why not)."""
    cands = [given] if given else [os.environ.get("SOFTBPR_RECBOLE_PYTHON"),
                                   str(HARNESS / ".venv" / "bin" / "python")]
    for c in cands:
        if not c:
            continue
        if not Path(c).exists():
            if given:
                return None, f"{c} does not exist"
            continue
        r = subprocess.run([c, "-c", "import recbole; print(recbole.__version__)"],
                           capture_output=True, text=True, check=False)
        if r.returncode == 0:
            return c, r.stdout.strip()
        return None, f"{c} cannot import recbole ({r.stderr.strip().splitlines()[-1:]})"
    return None, (f"no RecBole environment ({HARNESS}/.venv, $SOFTBPR_RECBOLE_PYTHON or "
                  f"--recbole-python; {HARNESS}/README.md says how to install one)")


def write_ml100k_split(udata: Path, out: Path, test_frac: float = 0.2, seed: int = 2020) -> None:
    """make_ml100k_split.py's fixed split, from MovieLens' u.data (the ratings RecBole bundles):
    ids re-indexed 0..n-1 in order, per user a seeded 20 % of the (sorted, then shuffled) items
    to test."""
    rows = []
    with open(udata) as fh:
        for line in fh:
            u, i = line.split("\t")[:2]
            rows.append((int(u), int(i)))
    umap = {u: k for k, u in enumerate(sorted({u for u, _ in rows}))}
    imap = {i: k for k, i in enumerate(sorted({i for _, i in rows}))}
    by_user = defaultdict(list)
    for u, i in rows:
        by_user[umap[u]].append(imap[i])
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "train.txt", "w") as ftr, open(out / "test.txt", "w") as fte:
        for u in sorted(by_user):
            items = sorted(set(by_user[u]))
            rng.shuffle(items)
            k = max(1, round(test_frac * len(items))) if len(items) > 1 else 0
            te, tr = sorted(items[:k]), sorted(items[k:])
            ftr.write(" ".join(map(str, [u] + tr)) + "\n")
            if te:
                fte.write(" ".join(map(str, [u] + te)) + "\n")


def dataset_folder(name: str, work: Path, rb_py: str | None) -> Path | None:
    if name == "gowalla":
        d = DATA / "gowalla"
        return d if (d / "train.txt").exists() else None
    if name != "ml-100k":
        raise SystemExit(f"softbpr: error: unknown dataset {name!r}, --datasets, "
                         "choose ml-100k and/or gowalla")
    out = work / "ml-100k-lgcn"
    if rb_py is not None:  # the harness's own script (it reads RecBole's bundled copy)
        subprocess.run([rb_py, str(HARNESS / "make_ml100k_split.py"), "--out", str(out)],
                       check=True, capture_output=True)
        return out
    udata = DATA / "ml-100k" / "u.data"
    if not udata.exists():
        return None
    write_ml100k_split(udata, out)
    return out


def thread_env(threads: int) -> dict:
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[k] = str(threads)
    return env


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process so far (Linux /proc), NaN elsewhere."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def stream(cmd: list[str], env: dict, what: str) -> list[dict]:
    """Run cmd; return its JSON lines, each with `cpu_now` (its CPU seconds when it was read)."""
    rows = []
    with tempfile.TemporaryFile("w+") as err, subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env) as proc:
        for line in proc.stdout:
            if line.startswith("{"):
                row = json.loads(line)
                row["cpu_now"] = cpu_seconds(proc.pid)
                rows.append(row)
        proc.wait()
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"{what} failed: {err.read().strip()[-2000:]}")
    return rows


def run_recbole(py: str, folder: Path, threads: int, epochs: int, max_batches: int,
                work: Path) -> dict:
    cmd = [py, str(HARNESS / "run_recbole.py"), "--lgcn_dir", str(folder),
           "--dataset", folder.name.replace("-", "_") + "_fixed",
           "--data_path", str(work / "atomic"), "--workdir", str(work / "recbole_work"),
           "--model", "LightGCN", "--sampler", "dns", "--H", str(PROTOCOL["H"]),
           "--epochs", str(epochs), "--eval_every", "0", "--threads", str(threads),
           "--batch", str(PROTOCOL["batch"]), "--lr", str(PROTOCOL["lr"]),
           "--reg", str(PROTOCOL["reg"]), "--dim", str(PROTOCOL["dim"]),
           "--layers", str(PROTOCOL["layers"]), "--seed", str(PROTOCOL["seed"])]
    if max_batches:
        cmd += ["--max_batches", str(max_batches)]
    rows = stream(cmd, thread_env(threads), "RecBole harness")
    setup = next(x for x in rows if x["event"] == "setup")
    eps = [x for x in rows if x["event"] == "epoch"]
    return {"wall": [e["train_s"] for e in eps], "cpu_now": [e["cpu_now"] for e in eps],
            "batches": [e["batches"] for e in eps],
            "batches_per_epoch": setup["batches_per_epoch"], "threads": setup["threads"],
            "version": f"recbole {setup['recbole']}, torch {setup['torch']}"}


def softbpr_worker(folder: str, epochs: int, max_batches: int) -> None:
    """(In the child process.) Train with softbpr.fit; one JSON line per epoch on stdout."""
    import torch

    from softbpr.config import load
    from softbpr.trainer import fit

    exp = load(overrides={
        "data": folder, "valid_ratio": 0.0, "model": "lightgcn", "preset": "dns",
        "pool_size": PROTOCOL["H"], "dim": PROTOCOL["dim"], "layers": PROTOCOL["layers"],
        "batch_size": PROTOCOL["batch"], "lr": PROTOCOL["lr"], "reg": PROTOCOL["reg"],
        "seed": PROTOCOL["seed"], "epochs": epochs, "eval_every": epochs, "patience": 0,
        "device": "cpu", "max_batches": max_batches})

    def on_epoch(row: dict) -> None:
        sys.stdout.write(json.dumps({"event": "epoch", "train_s": row["train_seconds"]}) + "\n")
        sys.stdout.flush()

    print(json.dumps({"event": "setup", "torch": torch.__version__,
                      "threads": torch.get_num_threads()}), flush=True)
    fit(exp, out_dir=None, log=lambda m: None, progress=False, on_epoch=on_epoch)


def run_softbpr(folder: Path, threads: int, epochs: int, max_batches: int,
                src: Path) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(folder),
           "--epochs", str(epochs), "--max-batches", str(max_batches)]
    env = thread_env(threads)
    env["PYTHONPATH"] = os.pathsep.join([str(src), env.get("PYTHONPATH", "")])
    rows = stream(cmd, env, "softbpr")
    setup = next(x for x in rows if x["event"] == "setup")
    eps = [x for x in rows if x["event"] == "epoch"]
    with open(folder / "train.txt") as fh:
        n_train = sum(len(line.split()) - 1 for line in fh if line.strip())
    per_epoch = -(-n_train // PROTOCOL["batch"])
    return {"wall": [e["train_s"] for e in eps], "cpu_now": [e["cpu_now"] for e in eps],
            "batches": [min(max_batches, per_epoch) if max_batches else per_epoch] * len(eps),
            "batches_per_epoch": per_epoch, "threads": setup["threads"],
            "version": f"softbpr ({src}), torch {setup['torch']}"}


def epoch_seconds(run: dict) -> dict[str, float]:
    """Median seconds per full epoch over epochs 2 .. E-1 of a run: wall and cpu."""
    full = run["batches_per_epoch"]
    wall = [s / b * full for s, b in zip(run["wall"], run["batches"])][1:-1]
    c, b = run["cpu_now"], run["batches"]
    cpu = [(c[k] - c[k - 1]) / b[k] * full for k in range(1, len(c) - 1)]
    return {"wall": statistics.median(wall), "cpu": statistics.median(cpu)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="ml-100k,gowalla")
    ap.add_argument("--threads", default="1", help="comma-separated thread counts, e.g. 1,2")
    ap.add_argument("--rounds", type=int, default=3, help="alternating runs of each tool")
    ap.add_argument("--epochs", type=int, default=4, help="epochs per run (the first and the "
                    "last are not measured)")
    ap.add_argument("--max-batches", type=int, default=10,
                    help="gowalla: batches per timed epoch (0 = full epochs)")
    ap.add_argument("--recbole-python", default=None, help="python of RecBole's environment")
    ap.add_argument("--softbpr-src", action="append", default=None,
                    help="a softbpr source tree to time (default: this checkout's src); give "
                    "it several times to time several trees side by side, e.g. before and after")
    ap.add_argument("--out", default=None, help="append JSON lines here")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # the softbpr child
    a = ap.parse_args(argv)
    if a.worker:
        softbpr_worker(a.worker, a.epochs, a.max_batches)
        return 0
    if a.epochs < 3:
        ap.error("--epochs must be >= 3 (the first and the last epoch are not measured)")
    threads = [int(t) for t in a.threads.split(",")]
    rb_py, rb_note = recbole_python(a.recbole_python)
    print(f"RecBole: skipped: {rb_note}" if rb_py is None else
          f"RecBole: {rb_py} (recbole {rb_note})")
    head = {"machine": machine(), "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d %H:%M"), "load_avg_start": load_avg()}
    print(f"machine: {head['machine']}; load average {head['load_avg_start']:.2f} at the start")
    srcs = [Path(x).resolve() for x in (a.softbpr_src or [str(ROOT / "src")])]
    labels = {f"softbpr{'' if len(srcs) == 1 else f' #{k + 1}'}": src
              for k, src in enumerate(srcs)}
    for lab, src in labels.items():
        print(f"{lab}: {src}")
    table = []
    with (tempfile.TemporaryDirectory(prefix="softbpr_vs_recbole_") as tmp,
          open(a.out, "a") if a.out else contextlib.nullcontext() as out_fh):
        work = Path(tmp)
        for name in a.datasets.split(","):
            folder = dataset_folder(name, work, rb_py)
            if folder is None:
                print(f"{name}: skipped (not found under {DATA})")
                continue
            mb = a.max_batches if name == "gowalla" else 0
            for t in threads:
                tools = (["recbole"] if rb_py is not None else []) + list(labels)
                per = {tool: [] for tool in tools}  # per round: {"wall": s, "cpu": s}
                for r in range(a.rounds):
                    got = {}
                    for tool in (tools if r % 2 == 0 else tools[::-1]):
                        run = (run_recbole(rb_py, folder, t, a.epochs, mb, work)
                               if tool == "recbole" else
                               run_softbpr(folder, t, a.epochs, mb, labels[tool]))
                        got[tool] = epoch_seconds(run)
                        per[tool].append(got[tool])
                        if out_fh:
                            out_fh.write(json.dumps(
                                {**head, "dataset": name, "threads": t, "round": r,
                                 "tool": tool, "epoch_s": got[tool], "max_batches": mb, **run,
                                 "load_avg": load_avg()}) + "\n")
                            out_fh.flush()
                    print(f"{name} threads {t} round {r}: " + ", ".join(
                        f"{k} {v['wall']:.3f} s wall / {v['cpu']:.3f} s cpu per epoch"
                        for k, v in got.items()), flush=True)
                table.append((name, t, mb, per))
    print(f"\n{head['machine']}; load average {head['load_avg_start']:.2f} -> {load_avg():.2f}. "
          "LightGCN + DNS(32): seconds per training epoch (median of the rounds; Gowalla: "
          "seconds per batch x batches per epoch) and RecBole / softbpr, the ratio of each "
          "round: median (min-max)")
    print("| dataset | threads | tool | wall s/epoch | cpu s/epoch | RecBole / softbpr, wall "
          "| RecBole / softbpr, cpu |")
    print("|---|---|---|---|---|---|---|")
    for name, t, mb, per in table:
        where = f"{name} ({mb} batches/epoch timed)" if mb else name
        for tool, rounds in per.items():
            cells = []
            for clock in ("wall", "cpu"):
                rat = ([rb[clock] / sb[clock] for rb, sb in zip(per["recbole"], rounds)]
                       if "recbole" in per and tool != "recbole" else [])
                cells.append(f"**{statistics.median(rat):.1f}x** ({min(rat):.1f}-{max(rat):.1f})"
                             if rat else "")
            print(f"| {where} | {t} | {tool} | "
                  f"{statistics.median(x['wall'] for x in rounds):.3f} | "
                  f"{statistics.median(x['cpu'] for x in rounds):.3f} | {cells[0]} | {cells[1]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
