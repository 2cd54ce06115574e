"""Top-K recommendation for every user vs the evaluation path, on the same vectors.

    python bench/recommend.py                      # Gowalla from ../shared/data (else synthetic)
    python bench/recommend.py --data synthetic --k 50

Times Recommender.recommend(all users, k, exclude_seen=True) (external ids out) against a full
test evaluation (top-50, train+valid masked) and the bare user x item matmul, on an untrained
LightGCN (speed does not depend on the weights). Both use evaluate.topk_masked.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from softbpr.config import DataConfig
from softbpr.graph import InteractionGraph
from softbpr.models import build_model
from softbpr.recommend import Recommender
from softbpr.split import load_split
from softbpr.trainer import evaluate_model

GOWALLA = Path(__file__).resolve().parents[2] / "shared" / "data" / "gowalla"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(GOWALLA) if GOWALLA.exists() else "synthetic")
    ap.add_argument("--k", type=int, default=50)
    args = ap.parse_args()
    split = load_split(DataConfig(data=args.data), log=lambda m: None)
    graph = InteractionGraph.from_pairs(split.train, split.n_users, split.n_items)
    model = build_model("lightgcn", split.n_users, split.n_items, 64, 3, "xavier",
                        torch.Generator().manual_seed(0)).eval()
    with torch.no_grad():
        emb = model.propagate(graph)
    rec = Recommender(emb.user, emb.item, split, graph.train_csr)
    users = list(split.user_map.ids)
    t = time.perf_counter()
    out = rec.recommend(users, k=args.k)
    t_rec = time.perf_counter() - t
    t = time.perf_counter()
    evaluate_model(model, graph, split, "test", (20, 50))
    t_eval = time.perf_counter() - t
    t = time.perf_counter()
    with torch.no_grad():
        bs = max(1, (1 << 25) // split.n_items)
        for s in range(0, split.n_users, bs):
            (emb.user[s:s + bs] @ emb.item.T).max()
    t_mm = time.perf_counter() - t
    print(f"{split.summary()}\ntorch threads {torch.get_num_threads()}")
    print(f"recommend top-{args.k} for all {len(out):,} users (seen masked, external ids): "
          f"{t_rec:.2f} s\nfull test evaluation (top-50): {t_eval:.2f} s\n"
          f"bare score matmul, all users: {t_mm:.2f} s")


if __name__ == "__main__":
    main()
