"""Negative samplers: given a batch of (user, positive) pairs, return one negative per pair.

Every sampler has `sample(users, pos, emb, graph, generator) -> Negatives` and is chosen by name
from `SAMPLERS` at the config edge. A sampler may also define `setup(model, graph, split, device,
generator)`, called once before training (e.g. to pre-train a GAN generator), and `stats()`
returning a dict of per-epoch figures (reset on read) that the trainer adds to history.jsonl. Candidates are always drawn uniformly from the items that are
not the user's *training* positives (valid/test items can be drawn: the sampler must not see
held-out labels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .graph import InteractionGraph
from .models import Embeddings


@dataclass(frozen=True)
class Negatives:
    """One negative per pair.

    items: int64 [B] chosen real items, or None for synthetic negatives (MixGCF).
    emb: [B, d'] pooled negative representations, with gradient (what the loss scores).
    ego: [B, d] layer-0 rows for the L2 penalty; None = the ego rows of `items`.
    """

    items: torch.Tensor | None
    emb: torch.Tensor
    ego: torch.Tensor | None = None


def uniform_candidates(graph: InteractionGraph, users: torch.Tensor, n: int,
                       generator: torch.Generator | None, max_rounds: int = 50) -> torch.Tensor:
    """[B, n] items drawn uniformly from each user's non-train items (independent draws).

    Vectorised rejection sampling: draw all, redraw only the known positives, repeat. Users whose
    positives fill most of the catalogue fall back to exact sampling from their complement.
    """
    B = users.shape[0]
    dev = graph.device
    cand = torch.randint(graph.n_items, (B, n), device=dev, generator=generator)
    flat_u = users.unsqueeze(1).expand(B, n).reshape(-1)
    flat = cand.view(-1)
    todo = graph.is_positive(flat_u, flat).nonzero().squeeze(1)  # positions to redraw
    rounds = 0
    while todo.numel():  # note: one host sync per round; rounds are few when density << 1
        rounds += 1
        if rounds > max_rounds:
            _exact_fill(graph, flat_u, flat, todo, generator)
            break
        new = torch.randint(graph.n_items, (todo.numel(),), device=dev, generator=generator)
        flat[todo] = new
        todo = todo[graph.is_positive(flat_u[todo], new)]
    return cand


def _exact_fill(graph, flat_u, flat, todo, generator) -> None:
    """Replace entries `todo` by exact uniform draws from the user's complement (rare path)."""
    R = graph.train_csr
    for pos in todo.tolist():
        user = int(flat_u[pos])
        free = np.setdiff1d(np.arange(graph.n_items), R.indices[R.indptr[user]:R.indptr[user + 1]])
        j = torch.randint(len(free), (1,), generator=generator, device=flat.device)
        flat[pos] = int(free[int(j)])


class UniformSampler:
    """RNS: one item uniformly from the user's non-train items."""

    name = "uniform"

    def sample(self, users, pos, emb: Embeddings, graph: InteractionGraph,
               generator: torch.Generator | None) -> Negatives:
        items = uniform_candidates(graph, users, 1, generator)[:, 0]
        return Negatives(items, emb.item[items])


class DynamicHardSampler:
    """DNS(H): H uniform candidates from the non-train items; keep the highest-scored (eq. 3).

    j = argmax_{k in C} <e_u, e_k> with the pooled embeddings of the current model. The choice is
    made under no_grad; the chosen item's embedding is then gathered *with* gradient. H = 1 is RNS.
    """

    name = "dns"

    def __init__(self, pool_size: int = 16):
        if pool_size < 1:
            raise ValueError(f"pool_size (H) must be >= 1, got {pool_size}")
        self.pool_size = pool_size

    def sample(self, users, pos, emb: Embeddings, graph: InteractionGraph,
               generator: torch.Generator | None) -> Negatives:
        cand = uniform_candidates(graph, users, self.pool_size, generator)  # [B, H]
        with torch.no_grad():
            u = emb.user[users].detach()  # [B, d]
            # F.embedding is the fastest row gather on CPU (several x faster than item[cand])
            cands = F.embedding(cand, emb.item.detach())  # [B, H, d]
            scores = torch.bmm(cands, u.unsqueeze(2)).squeeze(2)  # [B, H]
            best = scores.argmax(1, keepdim=True)
            items = cand.gather(1, best).squeeze(1)  # [B]
        return Negatives(items, emb.item[items])


SAMPLERS = {"uniform": UniformSampler, "dns": DynamicHardSampler}


def build_sampler(name: str, pool_size: int):
    if name == "uniform":
        return UniformSampler()
    if name == "dns":
        return DynamicHardSampler(pool_size)
    raise ValueError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
