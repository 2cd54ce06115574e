"""The gradient-weight histogram of an epoch: accumulated on device, summarised on the host.

The paper (eq. 8-9) argues through Δ = 1 − σ((1−α)(ŷ_ui − ŷ_uj)), the per-triplet weight of the
BPR gradient: under DNS it is spread out (near 0 for easy triplets, near 1 for the hardest, which
then dominate), under SDNS it is squeezed around 0.5. The trainer records the epoch's Δ as a
fixed-bin histogram over [0, 1] (`delta_hist` in history.jsonl) plus the quantiles
`delta_q10`, `delta_q50`, `delta_q90` read off it, so the claim can be checked per epoch.
"""

from __future__ import annotations

import numpy as np
import torch

from .data import unique

DELTA_BINS = 49
"""Equal-width bins over [0, 1]: quantiles are read off to within a bin, 1/49 ≈ 0.02. An odd
count puts Δ = 0.5 (ŷ_ui = ŷ_uj, where every run starts) in the middle of a bin rather than on an
edge, so an untrained model's median reads 0.5, not 0.51."""

DELTA_QUANTILES = (0.1, 0.5, 0.9)


def bin_counts(x: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Counts of x[B] in the bins [edges[k], edges[k+1]) with the last bin open above; float64.

    edges[K] are the sorted left edges, edges[0] must be <= min(x). One binary search per value
    (`bucketize`, right=True: the number of edges <= x, as comparing with every edge) and an
    index_add of ones: no host sync (bincount must learn its size), exact counts in any
    summation order, and O(B log K) rather than a [B, K] comparison (M = 32 negatives per pair
    made that a quarter of an ml-100k epoch).
    """
    idx = torch.bucketize(x, edges, right=True).sub_(1).clamp_(min=0)
    out = torch.zeros(edges.numel(), dtype=torch.float64, device=x.device)
    return out.index_add_(0, idx, out.new_ones(1).expand(idx.numel()))


def delta_edges(device, bins: int = DELTA_BINS) -> torch.Tensor:
    """Left edges 0, 1/bins, ..., (bins-1)/bins: Δ = 1 exactly falls in the last bin."""
    return torch.arange(bins, device=device, dtype=torch.float32) / bins


def hist_quantiles(counts, qs=DELTA_QUANTILES, lo: float = 0.0, hi: float = 1.0) -> list[float]:
    """Quantiles of a histogram of equal-width bins over [lo, hi], linear inside a bin.

    A value at cumulative share q lies in the first bin whose cumulative count reaches q·N; we
    place it proportionally inside that bin. NaN for an empty histogram.
    """
    counts = [float(c) for c in counts]
    n = sum(counts)
    if n <= 0:
        return [float("nan")] * len(qs)
    width = (hi - lo) / len(counts)
    out = []
    for q in qs:
        target, cum = q * n, 0.0
        for k, c in enumerate(counts):
            if c > 0 and cum + c >= target:
                out.append(lo + width * (k + (target - cum) / c))
                break
            cum += c
        else:  # pragma: no cover - q <= 1 always reaches the last non-empty bin
            out.append(hi)
    return out


def summarize_delta(counts) -> dict:
    """History fields of one epoch's Δ histogram: delta_q10/q50/q90 and delta_hist (ints)."""
    out = {f"delta_q{round(q * 100)}": v for q, v in zip(DELTA_QUANTILES, hist_quantiles(counts))}
    out["delta_hist"] = [int(c) for c in counts]
    return out


def pair_keys(users: np.ndarray, items: np.ndarray, n_items: int, device) -> torch.Tensor:
    """Sorted unique keys user * n_items + item of (user, item) pairs, for `is_member`."""
    return torch.from_numpy(unique(users.astype(np.int64) * n_items + items)).to(device)


def is_member(keys: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """q (any shape) found in the sorted 1-d `keys`? One binary search per entry."""
    if keys.numel() == 0:
        return torch.zeros_like(q, dtype=torch.bool)
    i = torch.searchsorted(keys, q.reshape(-1)).clamp_(max=keys.numel() - 1)
    return (keys[i] == q.reshape(-1)).reshape(q.shape)


class EpochStats:
    """What one training epoch measured, accumulated on the device (no host sync per batch).

    Per batch `add` takes the loss and penalty (means over the batch), the score gaps
    ŷ_ui − ŷ_uj [B] or [B, M], their gradient weights Δ (same shape; losses.gradient_weight)
    and the chosen negatives' ids (None for synthetic negatives). `read` returns the epoch means
    (loss, reg, score_gap, grad_weight), the Δ histogram and quantiles, and for each named key
    set in `watch` (e.g. held-out positives) the share of real negatives that hit it: the
    sampler's false-negative rate.
    """

    def __init__(self, device, n_items: int, watch: dict[str, torch.Tensor] | None = None):
        self.n_items, self.watch = n_items, dict(watch or {})
        self.tot = torch.zeros(5, dtype=torch.float64, device=device)  # loss, reg, gap, Δ, n
        self.hits = torch.zeros(len(self.watch) + 1, dtype=torch.float64, device=device)
        self.edges = delta_edges(device)
        self.hist = torch.zeros(self.edges.numel(), dtype=torch.float64, device=device)

    @torch.no_grad()
    def add(self, users: torch.Tensor, loss: torch.Tensor, penalty: torch.Tensor,
            gap: torch.Tensor, delta: torch.Tensor, neg_items: torch.Tensor | None) -> None:
        m = users.numel()
        self.hist += bin_counts(delta.reshape(-1), self.edges)
        per_pair = delta.numel() / max(m, 1)  # M negatives per pair: means per pair
        self.tot += torch.stack([loss.detach().double() * m, penalty.detach().double() * m,
                                 gap.double().sum() / per_pair, delta.double().sum() / per_pair,
                                 self.tot.new_tensor(float(m))])
        if self.watch and neg_items is not None:
            u = users.view(-1, *([1] * (neg_items.dim() - 1)))
            q = u * self.n_items + neg_items  # [B] or [B, M]
            for k, keys in enumerate(self.watch.values()):
                self.hits[k] += is_member(keys, q).sum()
            self.hits[-1] += q.numel()

    def read(self, dist=None) -> dict[str, float]:
        if dist is not None:
            for t in (self.tot, self.hits, self.hist):
                dist.all_sum(t)
        vals = self.tot.tolist()  # note: the one host sync of the epoch
        n = max(vals[4], 1.0)
        out = {"loss": vals[0] / n if vals[4] else float("nan"), "reg": vals[1] / n,
               "score_gap": vals[2] / n, "grad_weight": vals[3] / n}
        hits = self.hits.tolist()
        for k, v in zip(self.watch, hits[:-1] if hits[-1] else []):  # none: synthetic negatives
            out[k] = v / hits[-1]
        out.update(summarize_delta(self.hist.tolist()))
        return out


__all__ = ["DELTA_BINS", "DELTA_QUANTILES", "EpochStats", "bin_counts", "delta_edges",
           "hist_quantiles", "is_member", "pair_keys", "summarize_delta"]
