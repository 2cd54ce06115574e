"""RNS: one item uniformly from the user's non-train items."""

from __future__ import annotations

import torch

from ..graph import InteractionGraph
from ..models import Embeddings
from .base import Negatives, Sampler, scores, uniform_candidates


class UniformSampler(Sampler):
    """RNS: one item uniformly from the user's non-train items."""

    name = "uniform"

    def sample(self, users, pos, emb: Embeddings, graph: InteractionGraph,
               generator: torch.Generator | None) -> Negatives:
        items = uniform_candidates(graph, users, 1, generator)[:, 0]  # [B]
        neg = emb.item[items]  # [B, d']
        with torch.no_grad():
            self.tally.add("neg_score", scores(emb.user[users], neg))
        return Negatives(items, neg)
