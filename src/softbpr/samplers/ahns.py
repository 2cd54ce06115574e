"""AHNS (Lai et al., AAAI 2024): the candidate whose score is closest to a target that adapts
to the positive's score."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..graph import InteractionGraph
from ..models import Embeddings
from .base import Negatives, Sampler, uniform_candidates


class AHNSSampler(Sampler):
    """AHNS: of H = pool_size uniform candidates, keep the one whose score is closest to a
    target set by the positive's score (per pair, pooled embeddings, chosen under no_grad):

        j = argmin_{k in C} | ŷ_uk − β · (ŷ_ui + α)^(p+1) |.

    Lai, Chen, Han, Zhang & Chen, "Adaptive Hardness Negative Sampling for Collaborative
    Filtering" (AAAI 2024): a fixed hardness (DNS's arg-max) causes false positives early and
    false negatives late; the hardness of the negative should follow the positive's score. This
    is the rule of the reference code (Riwei-HEU/AHNS, `adaptive_negative_sampling`), with its
    parser defaults: H = 32 (`--n_negs`), α = 1.0, β = 0.1, p = −2 (an integer, `type=int`),
    which its README uses for Amazon Phones and Tools; for ML-1M it runs α = 0.1, β = 0.4,
    H = 16 and for Sports α = 0.5 (its backbone in all: MF, `--context_hops 0`). So the
    target is β / (ŷ_ui + α): the higher the positive scores, the *lower* the target — an
    easier negative for a pair the model already ranks well, a harder one for a poorly ranked
    positive. (ŷ_ui + α = 0 makes the target infinite: every candidate is equally far and the
    first, a uniform draw, is kept.) n_negatives = M > 1 repeats this for M disjoint groups of H
    candidates (the reference's K), items [B, M]. Reference scores: inner product (`--simi ip`,
    default) of the mean-pooled LightGCN vectors; ours of the model's pooled vectors (concat for
    NGCF). The reference draws candidates from the user's non-train items like ours.
    """

    name = "ahns"

    def __init__(self, pool_size: int, alpha: float = 1.0, beta: float = 0.1, p: int = -2,
                 n_negatives: int = 1):
        super().__init__()
        self.pool_size, self.n_negatives = pool_size, n_negatives  # H, M
        self.alpha, self.beta, self.p = float(alpha), float(beta), int(p)

    @classmethod
    def from_config(cls, cfg, **kwargs) -> AHNSSampler:
        return cls(cfg.pool_size, cfg.ahns_alpha, cfg.ahns_beta, cfg.ahns_p, cfg.n_negatives,
                   **kwargs)

    def target(self, pos_score: torch.Tensor) -> torch.Tensor:
        """β · (ŷ_ui + α)^(p+1), elementwise (an integer power: defined for negative bases)."""
        return self.beta * torch.pow(pos_score + self.alpha, self.p + 1)

    def sample(self, users, pos, emb: Embeddings, graph: InteractionGraph,
               generator: torch.Generator | None) -> Negatives:
        B, M, H = users.shape[0], self.n_negatives, self.pool_size
        cand = uniform_candidates(graph, users, M * H, generator).view(B, M, H)
        with torch.no_grad():
            u = emb.user[users].detach()  # [B, d]
            s_pos = (u * emb.item[pos].detach()).sum(-1)  # [B]
            cands = F.embedding(cand.view(B, M * H), emb.item.detach())  # [B, M·H, d]
            sc = torch.bmm(cands, u.unsqueeze(2)).view(B, M, H)  # [B, M, H]
            goal = self.target(s_pos).view(B, 1, 1)
            pick = (sc - goal).abs().argmin(2, keepdim=True)  # [B, M, 1]
            items = cand.gather(2, pick).squeeze(2)  # [B, M]
            self.tally.add("neg_score", sc.gather(2, pick))
            self.tally.add("cand_score", sc)
            self.tally.add("ahns_target", goal)
        if M == 1:
            items = items[:, 0]  # [B]
        return Negatives(items, gather=emb.item_rows)  # rows gathered if the loss asks
