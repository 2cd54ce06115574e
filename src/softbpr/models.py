"""Recommenders: each maps the training graph to per-layer and pooled user/item embeddings.

Every model is an `nn.Module` with
    propagate(graph) -> Embeddings       # one full pass; scores are dot products of the pooled
    pool(layers) -> Tensor               # per-layer rows [.., d] -> the pooled representation
    layer0_users(idx), layer0_items(idx) # ego rows, for the L2 penalty on the batch
and a `MODELS` name -> class dict used only at the config/CLI edge.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .graph import InteractionGraph, sym_spmm


@dataclass(frozen=True)
class Embeddings:
    """Output of one propagation.

    user: [U, d'] and item: [I, d'] pooled final representations (score = user @ item.T).
    user_layers / item_layers: per-layer outputs, each [U, d] / [I, d]; index 0 = ego embedding.
    """

    user: torch.Tensor
    item: torch.Tensor
    user_layers: tuple[torch.Tensor, ...]
    item_layers: tuple[torch.Tensor, ...]


def _init(weight: torch.Tensor, how: str, generator: torch.Generator | None) -> None:
    if how == "xavier":  # MixGCF reference: xavier_uniform_ on the [n, d] tables
        fan_in, fan_out = weight.shape[1], weight.shape[0]
        bound = (6.0 / (fan_in + fan_out)) ** 0.5
        with torch.no_grad():
            weight.uniform_(-bound, bound, generator=generator)
    elif how == "normal":  # LightGCN-PyTorch reference: N(0, 0.1^2)
        with torch.no_grad():
            weight.normal_(0.0, 0.1, generator=generator)
    else:
        raise ValueError(f"unknown init {how!r}; choose xavier or normal")


class MF(nn.Module):
    """Matrix factorisation: score = <e_u, e_i>; no propagation (one layer, the ego one)."""

    def __init__(self, n_users: int, n_items: int, dim: int = 64, layers: int = 0,
                 init: str = "xavier", generator: torch.Generator | None = None):
        super().__init__()
        self.n_users, self.n_items, self.dim, self.layers = n_users, n_items, dim, 0
        self.user_emb = nn.Parameter(torch.empty(n_users, dim))
        self.item_emb = nn.Parameter(torch.empty(n_items, dim))
        _init(self.user_emb, init, generator)
        _init(self.item_emb, init, generator)

    def propagate(self, graph: InteractionGraph | None = None) -> Embeddings:
        return Embeddings(self.user_emb, self.item_emb, (self.user_emb,), (self.item_emb,))

    def pool(self, layers: list[torch.Tensor] | tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Combine per-layer rows (each [..., d]) into the final representation: the mean."""
        return layers[0] if len(layers) == 1 else torch.stack(list(layers), 0).mean(0)

    def layer0_users(self, idx: torch.Tensor) -> torch.Tensor:
        return self.user_emb[idx]

    def layer0_items(self, idx: torch.Tensor) -> torch.Tensor:
        return self.item_emb[idx]


class LightGCN(MF):
    """LightGCN (He et al., SIGIR 2020): E^(l+1) = Â E^(l), final = mean of E^(0..L).

    Â is the symmetric-normalised bipartite adjacency without self-loops (graph.py); layer
    weights are uniform 1/(L+1), as in the LightGCN paper and MixGCF's `--pool mean`.
    """

    def __init__(self, n_users: int, n_items: int, dim: int = 64, layers: int = 3,
                 init: str = "xavier", generator: torch.Generator | None = None):
        super().__init__(n_users, n_items, dim, 0, init, generator)
        self.layers = layers

    def propagate(self, graph: InteractionGraph) -> Embeddings:
        x = torch.cat([self.user_emb, self.item_emb], 0)  # [N, d]
        outs = [x]
        for _ in range(self.layers):
            x = sym_spmm(graph.adj, x)
            outs.append(x)
        pooled = self.pool(outs)  # [N, d]
        U = self.n_users
        return Embeddings(pooled[:U], pooled[U:], tuple(o[:U] for o in outs),
                          tuple(o[U:] for o in outs))


MODELS: dict[str, type[MF]] = {"mf": MF, "lightgcn": LightGCN}


def build_model(name: str, n_users: int, n_items: int, dim: int, layers: int, init: str,
                generator: torch.Generator | None = None) -> MF:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name](n_users, n_items, dim, layers, init, generator)
