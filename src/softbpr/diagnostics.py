"""The gradient-weight histogram of an epoch: accumulated on device, summarised on the host.

The paper (eq. 8-9) argues through Δ = 1 − σ((1−α)(ŷ_ui − ŷ_uj)), the per-triplet weight of the
BPR gradient: under DNS it is spread out (near 0 for easy triplets, near 1 for the hardest, which
then dominate), under SDNS it is squeezed around 0.5. The trainer records the epoch's Δ as a
fixed-bin histogram over [0, 1] (`delta_hist` in history.jsonl) plus the quantiles
`delta_q10`, `delta_q50`, `delta_q90` read off it, so the claim can be checked per epoch.
"""

from __future__ import annotations

import torch

DELTA_BINS = 49
"""Equal-width bins over [0, 1]: quantiles are read off to within a bin, 1/49 ≈ 0.02. An odd
count puts Δ = 0.5 (ŷ_ui = ŷ_uj, where every run starts) in the middle of a bin rather than on an
edge, so an untrained model's median reads 0.5, not 0.51."""

DELTA_QUANTILES = (0.1, 0.5, 0.9)


def bin_counts(x: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Counts of x[B] in the bins [edges[k], edges[k+1]) with the last bin open above; float64.

    edges[K] are the left edges, edges[0] must be <= min(x). Comparisons against the edges
    ([B, K] booleans) rather than bincount/histc: no host sync (bincount must learn its size),
    no atomics (deterministic on CUDA), and cheap next to a propagation for K <= 50.
    """
    ge = (x.unsqueeze(1) >= edges).sum(0, dtype=torch.float64)  # [K]: #(x >= left edge k)
    return ge - torch.cat([ge[1:], ge.new_zeros(1)])


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


__all__ = ["DELTA_BINS", "DELTA_QUANTILES", "bin_counts", "delta_edges", "hist_quantiles",
           "summarize_delta"]
