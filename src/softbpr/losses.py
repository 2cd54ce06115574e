"""Pairwise losses on (user, positive, negative) embeddings, and the L2 penalty.

All are means over the batch and use `logsigmoid` (stable for any score gap).
- BPR (Rendle et al. 2009):     L = -mean ln σ(ŷ_ui − ŷ_uj)
- soft BPR (SDNS paper, eq. 10): L = -mean ln σ((1−α)(ŷ_ui − ŷ_uj)),  0 <= α < 1
- mixed BPR (eq. 5 + eq. 1):    e_j' = α e_i + (1−α) e_j,  L = -mean ln σ(ŷ_ui − <e_u, e_j'>)
Since <e_u, e_j'> = α ŷ_ui + (1−α) ŷ_uj, mixed BPR equals soft BPR exactly, in value and in
gradient w.r.t. every embedding (eq. 7); `tests/test_losses.py` checks it numerically.
The gradient weight of a triplet is Δ = 1 − σ((1−α)(ŷ_ui − ŷ_uj)) (eq. 8–9), see `gradient_weight`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _check_alpha(alpha: float) -> float:
    if not (0.0 <= alpha < 1.0):
        raise ValueError(f"alpha must be in [0, 1), got {alpha}")
    return float(alpha)


class SoftBPR:
    """-mean ln σ((1−α)(ŷ_ui − ŷ_uj)); α = 0 is plain BPR."""

    def __init__(self, alpha: float = 0.0):
        self.alpha = _check_alpha(alpha)

    def __call__(self, u: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        # u, pos, neg: [B, d]
        diff = (u * pos).sum(-1) - (u * neg).sum(-1)  # [B]
        return -F.logsigmoid((1.0 - self.alpha) * diff).mean()


class BPR(SoftBPR):
    def __init__(self, alpha: float = 0.0):
        if alpha not in (0, 0.0):
            raise ValueError(f"loss 'bpr' takes no alpha (got {alpha}); use loss 'soft_bpr'")
        super().__init__(0.0)


class MixedBPR:
    """BPR on the positive-dominated synthetic negative e_j' = α e_i + (1−α) e_j (eq. 5)."""

    def __init__(self, alpha: float = 0.9):
        self.alpha = _check_alpha(alpha)

    def __call__(self, u: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        mixed = self.alpha * pos + (1.0 - self.alpha) * neg  # [B, d]
        return -F.logsigmoid((u * pos).sum(-1) - (u * mixed).sum(-1)).mean()


def gradient_weight(diff: torch.Tensor, alpha: float) -> torch.Tensor:
    """Δ = 1 − σ((1−α)·diff) for score gaps diff = ŷ_ui − ŷ_uj (the weight in eq. 8/9)."""
    return 1.0 - torch.sigmoid((1.0 - alpha) * diff)


def l2_penalty(*rows: torch.Tensor) -> torch.Tensor:
    """sum over the given layer-0 rows of ||e||² / 2, divided by the batch size (rows[0] count).

    This is LightGCN's regulariser: only the ego embeddings used in the batch are penalised.
    """
    batch = rows[0].shape[0]
    return sum(r.pow(2).sum() for r in rows) / 2.0 / batch


LOSSES = {"bpr": BPR, "soft_bpr": SoftBPR, "mixed_bpr": MixedBPR}


def build_loss(name: str, alpha: float):
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
    return LOSSES[name](alpha)
