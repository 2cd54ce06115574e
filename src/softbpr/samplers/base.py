"""The sampler seam: `Negatives`, the `Sampler` base class, uniform candidate draws, `Tally`.

A sampler's life in the trainer (every hook is called, on every rank; the defaults do nothing):

    s = SAMPLERS[cfg.name].from_config(cfg)         # at the config edge
    s.setup(model, graph, split, device, generator) # once, before training (and before a resume)
    s.load_state_dict(state)                        # on resume only
    for epoch in 1, 2, ...:
        s.on_epoch_start(epoch, max_batches)        # before the epoch's first batch
        for each batch: s.sample(users, pos, emb, graph, generator) -> Negatives
        history row |= s.stats()                    # per-epoch figures, reset on read
        state.pt["sampler"] = s.state_dict()        # {} for a sampler without state

Candidates are drawn from the items that are not the user's *training* positives (valid/test
items can be drawn: a sampler must not see held-out labels).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from ..graph import InteractionGraph
from ..models import Embeddings

if TYPE_CHECKING:  # config imports the registries: no import at run time
    from ..config import SamplerConfig
    from ..split import Split


class Negatives:
    """The negatives of a batch of B (user, positive) pairs: one per pair, or M per pair.

    items: int64 [B] or [B, M] chosen real items, or None for synthetic negatives (MixGCF).
    emb: [B, d'] or [B, M, d'] pooled negative representations, with gradient (what a loss
         scores). Given, or gathered on first use by `gather(items)` (e.g. `Embeddings.item_rows`):
         a loss that scores M negatives from the item table (`Loss.batch_loss`) never makes the
         [B, M, d'] block.
    ego: layer-0 rows for the L2 penalty, shaped like emb with width d; None = the ego rows of
         `items`.
    """

    __slots__ = ("_emb", "_gather", "ego", "items")

    def __init__(self, items: torch.Tensor | None, emb: torch.Tensor | None = None,
                 ego: torch.Tensor | None = None,
                 gather: Callable[[torch.Tensor], torch.Tensor] | None = None):
        if emb is None and (items is None or gather is None):
            raise ValueError("Negatives need emb, or items and a gather function")
        self.items, self._emb, self.ego, self._gather = items, emb, ego, gather

    @property
    def emb(self) -> torch.Tensor:
        if self._emb is None:
            self._emb = self._gather(self.items)
        return self._emb


class Tally:
    """Per-epoch means of sampler figures, summed on the device (no host sync until `read`)."""

    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}

    def add(self, key: str, values: torch.Tensor) -> None:
        v = values.detach().double().sum()
        self.sums[key] = self.sums[key] + v if key in self.sums else v
        self.counts[key] = self.counts.get(key, 0) + values.numel()

    def read(self) -> dict[str, float]:
        """Means since the last read (then reset)."""
        out = {k: float(v) / max(self.counts[k], 1) for k, v in self.sums.items()}
        self.sums, self.counts = {}, {}
        return out


class Sampler(ABC):
    """Base class of the negative samplers: no-op lifecycle hooks, `sample` to write.

    A subclass sets `name` (its key in `SAMPLERS`), implements `sample`, and overrides the hooks
    it needs. Per-epoch figures go into `self.tally` (see `stats`); hardness figures by
    convention: `neg_score` = mean score ŷ_uj of the chosen negatives, `cand_score` = mean score
    of a candidate pool they are chosen from. The trainer adds `score_gap` and `sample_seconds`.
    """

    name: str = ""

    def __init__(self):
        self.tally = Tally()

    @classmethod
    def from_config(cls, cfg: SamplerConfig, **kwargs: Any) -> Sampler:
        """The sampler of config section `cfg` ([sampler]); `kwargs` are constructor arguments
        that the config does not carry (tests, benchmarks). Override to read config fields."""
        return cls(**kwargs)

    def setup(self, model: torch.nn.Module, graph: InteractionGraph, split: Split | None,
              device: torch.device | str | None, generator: torch.Generator | None) -> None:
        """Called once before training, on resume too (before `load_state_dict`)."""

    def on_epoch_start(self, epoch: int, max_batches: int = 0) -> None:
        """Called before epoch `epoch` (1-based); max_batches > 0 caps the epoch's batches."""

    @abstractmethod
    def sample(self, users: torch.Tensor, pos: torch.Tensor, emb: Embeddings,
               graph: InteractionGraph, generator: torch.Generator | None) -> Negatives:
        """Negatives for the pairs (users [B], pos [B]) given the current embeddings."""

    def stats(self) -> dict[str, float]:
        """Per-epoch figures since the last call (then reset), added to history.jsonl."""
        return self.tally.read()

    def state_dict(self) -> dict:
        """What `train --resume` needs to continue exactly (tensors on the CPU)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore `state_dict()`'s output, after `setup`."""


def scores(u: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """Row-wise dot products: u [B, d], items [B, d] or [B, K, d] -> [B] or [B, K]."""
    return (u.unsqueeze(1) * items).sum(-1) if items.dim() == 3 else (u * items).sum(-1)


def uniform_candidates(graph: InteractionGraph, users: torch.Tensor, n: int,
                       generator: torch.Generator | None, method: str = "auto",
                       max_rounds: int = 8) -> torch.Tensor:
    """[B, n] items drawn uniformly from each user's non-train items (independent draws).

    Two exact methods (the same distribution, different random streams):
      reject  draw all, redraw only the known positives (a bitmap lookup), repeat; entries
              still positive after `max_rounds` rounds (users owning most of the catalogue) get
              a rank draw. Each round asks the host whether anything is left: free on a CPU,
              and the fastest method there (a lookup costs less than a binary search).
      rank    draw a rank r uniformly in [0, n_items - deg(u)) and map it to u's r-th
              non-positive item (`nth_free_item`, one binary search): fixed work, no host
              sync, so a GPU never waits for the host.
    method="auto": reject on a CPU, rank on other devices.
    """
    if method == "auto":
        method = "reject" if users.device.type == "cpu" else "rank"
    B = users.shape[0]
    if method == "rank":
        return _rank_draw(graph, users.unsqueeze(1).expand(B, n), generator)
    if method != "reject":
        raise ValueError(f"method must be auto, reject or rank, got {method!r}")
    cand = torch.randint(graph.n_items, (B, n), device=users.device, generator=generator)
    flat_u = users.unsqueeze(1).expand(B, n).reshape(-1)
    flat = cand.view(-1)
    todo = graph.is_positive(flat_u, flat).nonzero().squeeze(1)  # positions to redraw
    for _ in range(max_rounds):
        if not todo.numel():  # (the host sync of the round)
            return cand
        new = torch.randint(graph.n_items, (todo.numel(),), device=users.device,
                            generator=generator)
        flat[todo] = new
        todo = todo[graph.is_positive(flat_u[todo], new)]
    if todo.numel():
        flat[todo] = _rank_draw(graph, flat_u[todo], generator)
    return cand


def _rank_draw(graph: InteractionGraph, users: torch.Tensor,
               generator: torch.Generator | None) -> torch.Tensor:
    """One uniform non-train item per entry of `users` (any shape), by rank."""
    n_free = graph.n_items - graph.user_degree[users]  # >= 1 (checked at graph build)
    # a 62-bit random integer modulo n_free: bias below n_free / 2^62
    r = torch.randint(1 << 62, users.shape, device=users.device, generator=generator) % n_free
    return nth_free_item(graph, users, r)


def nth_free_item(graph: InteractionGraph, users: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """The r-th (from 0, in item order) non-train item of each user; r < n_items - deg(user).

    With u's positives p_0 < p_1 < ..., p_j has p_j - j non-positives below it, so the r-th
    non-positive is r + #{j : p_j - j <= r}: a binary search in graph.free_keys."""
    if graph.free_keys.numel() == 0:
        return r.clone()
    below = torch.searchsorted(graph.free_keys, users * graph.n_items + r, right=True)
    return r + (below - graph.row_start[users])
