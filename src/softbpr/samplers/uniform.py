"""RNS: uniform draws from the user's non-train items (one, or M per pair)."""

from __future__ import annotations

import torch

from ..graph import InteractionGraph
from ..models import Embeddings
from .base import Negatives, Sampler, scores, uniform_candidates


class UniformSampler(Sampler):
    """RNS: one item uniformly from the user's non-train items; with n_negatives = M > 1, M
    independent draws per pair (items [B, M]: the negatives of the softmax losses)."""

    name = "uniform"

    def __init__(self, n_negatives: int = 1):
        super().__init__()
        self.n_negatives = n_negatives  # M

    @classmethod
    def from_config(cls, cfg, **kwargs) -> UniformSampler:
        return cls(cfg.n_negatives, **kwargs)

    def sample(self, users, pos, emb: Embeddings, graph: InteractionGraph,
               generator: torch.Generator | None) -> Negatives:
        items = uniform_candidates(graph, users, self.n_negatives, generator)  # [B, M]
        if self.n_negatives == 1:
            items = items[:, 0]  # [B]
            neg = emb.item_rows(items)  # [B, d']
            first = neg
        else:  # [B, M, d'] gathered only if the loss asks (Negatives.emb)
            neg, first = None, emb.item[items[:, 0]]
        with torch.no_grad():  # M i.i.d. draws: the first one's mean score is unbiased, and
            # costs 1/M of a pass over [B, M, d'] (the softmax losses' M reach the hundreds)
            self.tally.add("neg_score", scores(emb.user[users], first))
        return Negatives(items, neg, gather=emb.item_rows)
