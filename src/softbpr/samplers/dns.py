"""DNS(H) (Zhang et al., SIGIR 2013): the highest-scored of H uniform candidates (eq. 3)."""

from __future__ import annotations

import torch

from ..graph import InteractionGraph
from ..models import Embeddings, candidate_scores
from .base import Negatives, Sampler, uniform_candidates


class DynamicHardSampler(Sampler):
    """DNS(H): H uniform candidates from the non-train items; keep the highest-scored (eq. 3).

    j = argmax_{k in C} <e_u, e_k> with the pooled embeddings of the current model. The choice is
    made under no_grad; the chosen item's embedding is then gathered *with* gradient. H = 1 is RNS.
    """

    name = "dns"

    def __init__(self, pool_size: int):
        super().__init__()
        self.pool_size = pool_size  # H

    @classmethod
    def from_config(cls, cfg, **kwargs) -> DynamicHardSampler:
        return cls(cfg.pool_size, **kwargs)

    def sample(self, users, pos, emb: Embeddings, graph: InteractionGraph,
               generator: torch.Generator | None) -> Negatives:
        cand = uniform_candidates(graph, users, self.pool_size, generator)  # [B, H]
        with torch.no_grad():
            # one sampled dense product on CPUs (no [B, H, d] gather), gather + bmm elsewhere
            sc = candidate_scores(emb.user[users], emb.item, cand)  # [B, H]
            best = sc.argmax(1, keepdim=True)
            items = cand.gather(1, best).squeeze(1)  # [B]
            self.tally.add("neg_score", sc.gather(1, best))
            self.tally.add("cand_score", sc)
        return Negatives(items, emb.item_rows(items))
