"""Multi-node torchrun: 2 "nodes" x 1 process each, on this machine over a localhost rendezvous
(gloo on CPU), give the result of one process within tolerance, and one set of outputs.

Each node is its own `torchrun --nnodes 2 --nproc-per-node 1` launcher, as on a cluster where
Slurm starts one launcher per node (docs/large-data.md); they meet at a c10d rendezvous on
127.0.0.1 and the agents assign the ranks. Nothing in softbpr knows about nodes: RANK,
LOCAL_RANK and WORLD_SIZE come from the launcher.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest

ARGS = ["--data", "synthetic-small", "--epochs", "4", "--eval-every", "2", "--patience", "0",
        "--dim", "16", "--batch-size", "512", "--device", "cpu", "--quiet", "--preset", "sdns"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launcher() -> list[str]:
    exe = shutil.which("torchrun")
    return [exe] if exe else [sys.executable, "-m", "torch.distributed.run"]


def test_two_nodes_match_one_process(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "softbpr", "train", *ARGS, "--out",
                          str(tmp_path / "one")], capture_output=True, text=True, timeout=300,
                         env=env, check=False)
    assert one.returncode == 0, one.stderr
    port = _free_port()
    nodes = [subprocess.Popen(
        [*_launcher(), "--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d",
         "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "softbpr-test",
         "--max-restarts", "0", "-m", "softbpr", "train", *ARGS, "--out", str(tmp_path / "two")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outs = []
    try:
        for p in nodes:
            outs.append(p.communicate(timeout=300))
    finally:
        for p in nodes:
            if p.poll() is None:
                p.kill()
    for p, (_, err) in zip(nodes, outs):
        assert p.returncode == 0, err[-3000:]
    r1 = json.loads((tmp_path / "one" / "result.json").read_text())
    r2 = json.loads((tmp_path / "two" / "result.json").read_text())
    # the same global batches; only the negatives' random draws differ (per-rank streams)
    for k, v in r1["test"].items():
        assert r2["test"][k] == pytest.approx(v, abs=0.02), k
    cfg = json.loads((tmp_path / "two" / "config.json").read_text())
    assert cfg["world_size"] == 2
    rows = (tmp_path / "two" / "history.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in rows] == list(range(1, 5))  # one writer: rank 0
    assert sum(out.count("test recall@50") for out, _ in outs) == 1
