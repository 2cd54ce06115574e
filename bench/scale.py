"""Growth with data size: load rate, peak memory, seconds per batch / epoch / evaluation.

    python bench/scale.py                                  # 1M and 10M interactions
    python bench/scale.py --sizes 1M,10M,100M --dim 64     # the docs table (100M: ~15 min)
    python bench/scale.py --one FILE --dim 32              # one file, in this process

For each size a synthetic log (`softbpr data synth`, the users x items of issue 16's table) is
generated into --data-dir unless it is there, then measured in a fresh process (so each peak
RSS is that size's own):
  load       `load_split` on the CSV (parse, id maps, de-duplicate, temporal 80/10/10 split)
  build      graph (adjacency, train-pair index) + LightGCN (d, 3 layers) + Adam + sampler
  batch      SDNS (H = 16, α = 0.9) training batches of 2048 pairs: `--batches` timed after one
             warm-up batch; the epoch is extrapolated: (train pairs / 2048) x seconds per batch
  eval       validation (top-50, train items masked) on a seeded sample of `--eval-users`
             users; the full validation over every user is measured when it is short
             (`--full-eval-max` users), else extrapolated: sampled seconds x all / sampled
Peak RSS is read from /proc (VmHWM, reset per stage through clear_refs); a watchdog stops a
stage that passes --max-gb and reports where. The growth law and its check are printed after
the table; the results go to --json.

Growth law (LightGCN, full-graph propagation per batch, N = users + items, nnz = train pairs):
  per batch   ∝ L·d·(2·nnz + N)        (3 sparse products forward, 3 backward, Adam on N·d)
  per epoch   ∝ (nnz / B)·L·d·(2·nnz + N)    -- quadratic in the data at a fixed batch size
  evaluation  ∝ users_scored · items · d     (dense scores; the top-k pass is linear in them)
  memory      ≈ a·rows (load) ; b·nnz + c·N·d (training)
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

SIZES = {  # interactions -> (users, items), as in issue 16's table (100M: ≈2M users and items)
    "1M": (100_000, 34_000), "10M": (1_000_000, 336_000), "100M": (2_000_000, 1_000_000),
}


def rss() -> tuple[float, float]:
    """(current, peak) resident memory of this process in GB (VmRSS, VmHWM)."""
    cur = peak = float("nan")
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS"):
                cur = int(line.split()[1]) / 1e6
            elif line.startswith("VmHWM"):
                peak = int(line.split()[1]) / 1e6
    return cur, peak


def reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
    except OSError:
        pass


class Watchdog(threading.Thread):
    """Ends the process (exit 3) when its RSS passes `max_gb`, naming the stage."""

    def __init__(self, max_gb: float, out: dict):
        super().__init__(daemon=True)
        self.max_gb, self.out, self.stage = max_gb, out, "start"

    def run(self):
        while True:
            cur, _ = rss()
            if cur > self.max_gb:
                self.out["stopped"] = (f"{self.stage}: RSS {cur:.1f} GB passed --max-gb "
                                       f"{self.max_gb:g}")
                print(json.dumps(self.out), flush=True)
                os._exit(3)
            time.sleep(0.2)


def measure(path: str, dim: int, batches: int, eval_users: int, full_eval_max: int,
            max_gb: float) -> dict:
    import torch

    from softbpr.config import load as load_config
    from softbpr.config import with_updates
    from softbpr.distributed import Dist
    from softbpr.evaluate import RankingTask, score_task
    from softbpr.split import load_split
    from softbpr.trainer import build_parts, train_one_epoch

    out: dict = {"file": path, "dim": dim, "threads": torch.get_num_threads()}
    dog = Watchdog(max_gb, out)
    dog.start()

    def stage(name: str):
        dog.stage = name
        base = rss()[0]
        reset_peak()
        return base, time.perf_counter()

    def done(name: str, base: float, t0: float) -> None:
        cur, peak = rss()
        out[f"{name}_s"] = round(time.perf_counter() - t0, 3)
        out[f"{name}_peak_gb"] = round(peak, 3)
        out[f"{name}_delta_gb"] = round(cur - base, 3)
        out[f"{name}_rss_gb"] = round(cur, 3)
        print(f"  {name:6s} {out[f'{name}_s']:8.1f} s   RSS {cur:6.2f} GB (peak {peak:.2f})",
              file=sys.stderr, flush=True)

    out["import_gb"] = round(rss()[0], 3)
    exp = load_config(None, {"data": path, "dim": dim, "preset": "sdns", "device": "cpu",
                             "max_batches": batches})
    b = stage("load")
    split = load_split(exp.data, log=lambda s: None)
    done("load", *b)
    n_train = len(split.train)
    rows = n_train + len(split.valid) + len(split.test)
    out.update(users=split.n_users, items=split.n_items, rows=rows, train=n_train,
               file_mb=round(os.path.getsize(path) / 1e6, 1))
    out["load_rows_per_s"] = round(rows / out["load_s"])

    b = stage("build")
    parts = build_parts(exp, split, Dist(), torch.device("cpu"))
    done("build", *b)

    b = stage("train")
    parts.exp = with_updates(exp, max_batches=1)
    train_one_epoch(parts)  # first touch of every buffer
    parts.exp = exp
    st = train_one_epoch(parts)
    done("train", *b)
    per_batch = st["train_seconds"] / batches
    n_batches = math.ceil(n_train / exp.train.batch_size)
    out.update(batch_s=round(per_batch, 3), batches_per_epoch=n_batches,
               epoch_s_extrapolated=round(per_batch * n_batches, 1),
               sample_s_per_batch=round(st["sample_seconds"] / batches, 4))

    b = stage("eval")
    model, graph = parts.model, parts.graph
    model.eval()
    with torch.no_grad():
        emb = model.propagate(graph)
    truth = split.valid.csr(split.n_users, split.n_items)
    task = RankingTask.build(truth, graph.train_csr, "cpu", sample=eval_users, seed=0)
    t = time.perf_counter()
    res = score_task(task, emb.user, emb.item, (20, 50))
    sampled_s = time.perf_counter() - t
    out.update(eval_users_total=task.n_total, eval_users_sampled=res["users"],
               eval_sampled_s=round(sampled_s, 2),
               eval_sampled_ndcg50=round(res["ndcg@50"], 5))
    if task.n_total <= full_eval_max:
        full = RankingTask.build(truth, graph.train_csr, "cpu")
        t = time.perf_counter()
        rf = score_task(full, emb.user, emb.item, (20, 50))
        out.update(eval_full_s=round(time.perf_counter() - t, 2),
                   eval_full_ndcg50=round(rf["ndcg@50"], 5), eval_full_measured=True)
    else:
        out.update(eval_full_s=round(sampled_s * task.n_total / max(res["users"], 1), 1),
                   eval_full_measured=False)
    done("eval", *b)
    out["peak_gb"] = max(out[k] for k in out if k.endswith("_peak_gb"))
    nodes = split.n_users + split.n_items
    # bytes per row at the load peak; per train pair + per node-dimension once built; the
    # training step's transient per node-dimension (propagation buffers, gradients, Adam)
    out["load_bytes_per_row"] = round((out["load_peak_gb"] - out["import_gb"]) * 1e9 / rows)
    out["split_bytes_per_row"] = round(out["load_delta_gb"] * 1e9 / rows)
    out["build_bytes_per_train_pair"] = round(out["build_delta_gb"] * 1e9 / n_train)
    out["train_peak_bytes_per_node_dim"] = round(
        (out["train_peak_gb"] - out["build_rss_gb"]) * 1e9 / (nodes * dim), 1)
    out["load_avg"] = round(os.getloadavg()[0], 1)
    print(json.dumps(out), flush=True)
    return out


def law_check(rows: list[dict]) -> list[str]:
    """The growth law's predicted ratios between consecutive sizes vs the measured ones."""
    lines = []
    for a, b in itertools.pairwise(rows):
        if "batch_s" not in a or "batch_s" not in b:
            continue
        def work(r):
            return 2 * r["train"] + r["users"] + r["items"]

        pairs = [
            ("batch", work(b) / work(a), b["batch_s"] / a["batch_s"]),
            ("epoch", b["train"] * work(b) / (a["train"] * work(a)),
             b["epoch_s_extrapolated"] / a["epoch_s_extrapolated"]),
            ("sampled eval", b["items"] / a["items"], b["eval_sampled_s"] / a["eval_sampled_s"]),
            ("full eval", b["eval_users_total"] * b["items"] / (a["eval_users_total"] * a["items"]),
             b["eval_full_s"] / a["eval_full_s"]),
            ("load", b["rows"] / a["rows"], b["load_s"] / a["load_s"]),
        ]
        for what, pred, got in pairs:
            lines.append(f"{a['size']} -> {b['size']}: {what:12s} law x{pred:8.1f}   "
                         f"measured x{got:8.1f}")
    return lines


def table(rows: list[dict]) -> str:
    head = ("| interactions (users × items) | file | load (rows/s) | peak RSS | s / batch "
            "(2048) | epoch (extrapolated) | validation, sampled | validation, all users |")
    out = [head, "|" + "---|" * 8]
    for r in rows:
        if "stopped" in r and "batch_s" not in r:
            out.append(f"| {r['size']} | – | stopped: {r['stopped']} |" + " |" * 5)
            continue
        full = (f"{r['eval_full_s']:,.0f} s" + ("" if r.get("eval_full_measured")
                                                 else " (extrapolated)"))
        out.append(
            f"| {r['size']} ({r['users']:,} × {r['items']:,}) | {r['file_mb']:,.0f} MB | "
            f"{r['load_s']:.0f} s ({r['load_rows_per_s'] / 1e6:.2f}M/s) | {r['peak_gb']:.1f} GB | "
            f"{r['batch_s']:.2f} s | {_dur(r['epoch_s_extrapolated'])} "
            f"({r['batches_per_epoch']:,} batches) | {r['eval_sampled_s']:.1f} s "
            f"({r['eval_users_sampled']:,} users) | {full} ({r['eval_users_total']:,} users) |")
    return "\n".join(out)


def _dur(s: float) -> str:
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    if s < 2 * 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} days"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1M,10M", help="comma-separated keys of SIZES")
    ap.add_argument("--data-dir", default=None,
                    help="where the synthetic logs are, generated when missing (default: the "
                         "dataset cache, $SOFTBPR_DATA or ~/.cache/softbpr, + scale/)")
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--batches", type=int, default=3, help="timed training batches per size")
    ap.add_argument("--eval-users", type=int, default=10_000, help="sampled validation users")
    ap.add_argument("--full-eval-max", type=int, default=120_000,
                    help="measure the all-user validation up to this many users")
    ap.add_argument("--max-gb", type=float, default=14.0, help="stop a size past this RSS")
    ap.add_argument("--json", default=None, help="write the rows here")
    ap.add_argument("--one", metavar="FILE", help="measure one file in this process")
    a = ap.parse_args()
    if a.one:
        measure(a.one, a.dim, a.batches, a.eval_users, a.full_eval_max, a.max_gb)
        return 0
    import torch

    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, OMP_NUM_THREADS={env['OMP_NUM_THREADS']}, "
          f"load average {os.getloadavg()[0]:.1f}")
    from softbpr.catalog import data_home

    rows = []
    a.data_dir = a.data_dir or str(data_home() / "scale")
    Path(a.data_dir).mkdir(parents=True, exist_ok=True)
    for size in a.sizes.split(","):
        users, items = SIZES[size]
        f = Path(a.data_dir) / f"synth-{size.lower()}.csv"
        if not f.exists():
            subprocess.run([sys.executable, "-m", "softbpr", "data", "synth", "--users",
                            str(users), "--items", str(items), "--interactions", size,
                            "--out", str(f), "--quiet"], check=True, env=env)
        print(f"== {size}: {f}", flush=True)
        p = subprocess.run([sys.executable, __file__, "--one", str(f), "--dim", str(a.dim),
                            "--batches", str(a.batches), "--eval-users", str(a.eval_users),
                            "--full-eval-max", str(a.full_eval_max), "--max-gb", str(a.max_gb)],
                           stdout=subprocess.PIPE, text=True, env=env, check=False)
        last = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
        row = json.loads(last[-1]) if last else {"stopped": f"exit {p.returncode}"}
        row["size"] = size
        rows.append(row)
        if a.json:
            Path(a.json).write_text(json.dumps(rows, indent=1) + "\n")
    print(table(rows))
    print("\n".join(law_check(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
