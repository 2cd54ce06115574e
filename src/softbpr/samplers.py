"""Negative samplers: given a batch of (user, positive) pairs, return one negative per pair.

Every sampler has `sample(users, pos, emb, graph, generator) -> Negatives` and is chosen by name
from `SAMPLERS` at the config edge. A sampler may also define `setup(model, graph, split, device,
generator)`, called once before training (e.g. to pre-train a GAN generator), and `stats()`
returning a dict of per-epoch figures (reset on read) that the trainer adds to history.jsonl.
Candidates are always drawn from the items that are not the user's *training* positives
(valid/test items can be drawn: the sampler must not see held-out labels).

    uniform  RNS: one uniform non-train item
    dns      DNS(H): the highest-scored of H uniform candidates
    mixgcf   MixGCF (Huang et al., KDD 2021): positive + hop mixing of H candidates, a synthetic
             negative embedding (no item id)
    irgan    IRGAN (Wang et al., SIGIR 2017): an MF generator samples the negative, trained by
             policy gradient on the recommender's (discriminator's) reward (adversarial.py)
    advir    AdvIR (Park & Chang, WWW 2019): the same adversarial sampling with IRGAN's pairwise
             reward; pair it with loss adv_bpr (preset advir) for its adversarial training

Hardness figures in `stats()` (per epoch): `neg_score` = mean score ŷ_uj of the chosen negative
(for mixgcf: of the synthetic one) and, for samplers with a candidate pool, `cand_score` = mean
score of all candidates (the uniform baseline it is chosen from). The trainer adds
`score_gap` (mean ŷ_ui − ŷ_uj) and `sample_seconds` (the sampler's cost).
"""

from __future__ import annotations

from dataclasses import dataclass

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


def _scores(u: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """Row-wise dot products: u [B, d], items [B, d] or [B, K, d] -> [B] or [B, K]."""
    return (u.unsqueeze(1) * items).sum(-1) if items.dim() == 3 else (u * items).sum(-1)


class UniformSampler:
    """RNS: one item uniformly from the user's non-train items."""

    name = "uniform"

    def __init__(self):
        self.tally = Tally()

    def sample(self, users, pos, emb: Embeddings, graph: InteractionGraph,
               generator: torch.Generator | None) -> Negatives:
        items = uniform_candidates(graph, users, 1, generator)[:, 0]
        neg = emb.item[items]
        with torch.no_grad():
            self.tally.add("neg_score", _scores(emb.user[users], neg))
        return Negatives(items, neg)

    def stats(self) -> dict[str, float]:
        return self.tally.read()


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
        self.tally = Tally()

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
            self.tally.add("neg_score", scores.gather(1, best))
            self.tally.add("cand_score", scores)
        return Negatives(items, emb.item[items])

    def stats(self) -> dict[str, float]:
        return self.tally.read()


class MixGCFSampler:
    """MixGCF (Huang et al., KDD 2021): a synthetic hard negative from H candidates, K = 1.

    For each pair (u, i), with per-layer embeddings e^(l) (l = 0..L) of the model:
    1. candidates: H items drawn uniformly from u's non-train items (independent draws);
    2. positive mixing: for each layer l, one α_l ~ U(0, 1) per pair, shared by the H candidates
       (the reference draws `torch.rand(B, 1, L+1, 1)`: a fresh coefficient per layer), and
       c'_m^(l) = α_l e_i^(l) + (1 − α_l) e_m^(l);
    3. hop mixing: per layer, keep m_l = argmax_m <s^(l), c'_m^(l)> (chosen under no_grad, so
       layers may pick different candidates). Since <s, c'_m> = α<s, e_i> + (1 − α)<s, e_m> with
       1 − α > 0, the arg-max equals argmax_m <s^(l), e_m^(l)>: we score the raw candidates and
       mix only the chosen one (tests/test_baselines.py checks this against the literal code).
       s^(l) follows the reference code: with mean pooling (LightGCN, MF) it is the *pooled*
       user vector for every layer; with concat pooling (NGCF) it is the user's own layer-l
       output (`if pool != 'concat'` in MixGCF's `negative_sampling`);
    4. the synthetic negative [c'_{m_0}^(0), ..., c'_{m_L}^(L)] is pooled exactly like a real
       item (`model.pool`: mean for LightGCN, concat for NGCF) and the loss (BPR in preset
       mixgcf) scores it. Gradients reach the chosen candidates' and the positive's rows.
    The L2 penalty takes the synthetic layer-0 row (Negatives.ego), as MixGCF regularises
    `neg_gcn_embs[:, :, 0, :]`. Needs `setup(model, ...)` to learn the model's pooling.
    Not reproduced: K > 1 (K-pair loss), MixGCF's epoch = whole train list with the last partial
    batch dropped (the trainer's epoch keeps it). H defaults to the shared pool_size (16);
    MixGCF's README uses 64 (Yelp2018), 32 (Alibaba), 16 (Amazon).
    """

    name = "mixgcf"

    def __init__(self, pool_size: int = 16):
        if pool_size < 1:
            raise ValueError(f"pool_size (H) must be >= 1, got {pool_size}")
        self.pool_size = pool_size
        self.pool = None
        self.per_layer_user = False
        self.tally = Tally()

    def setup(self, model, graph=None, split=None, device=None, generator=None) -> None:
        self.pool = model.pool
        self.per_layer_user = getattr(model, "pooling", "mean") == "concat"

    def sample(self, users, pos, emb: Embeddings, graph: InteractionGraph,
               generator: torch.Generator | None) -> Negatives:
        if self.pool is None:
            raise RuntimeError("MixGCFSampler needs setup(model, ...) before sample()")
        n_layers = len(emb.item_layers)
        cand = uniform_candidates(graph, users, self.pool_size, generator)  # [B, H]
        B = users.shape[0]
        alpha = torch.rand(B, n_layers, device=cand.device, generator=generator)  # [B, L+1]
        picks, cand_score = [], 0.0
        with torch.no_grad():
            s_pooled = emb.user[users].detach()  # [B, d']
            for l in range(n_layers):
                s = emb.user_layers[l][users].detach() if self.per_layer_user else s_pooled
                n_l = F.embedding(cand, emb.item_layers[l].detach())  # [B, H, d]
                sc = torch.bmm(n_l, s.unsqueeze(2)).squeeze(2)  # [B, H] <s^(l), e_m^(l)>
                picks.append(sc.argmax(1))  # hop mixing (positive mixing keeps the arg-max)
                cand_score = cand_score + sc
            chosen = cand.gather(1, torch.stack(picks, 1))  # [B, L+1] item id per layer
            # pooled candidate scores: concat -> sum of per-layer scores; mean -> their mean
            self.tally.add("cand_score", cand_score / (1 if self.per_layer_user else n_layers))
        # recompute only the selected mixtures, now with gradient (same values as above)
        layers = [alpha[:, l:l + 1] * emb.item_layers[l][pos]
                  + (1 - alpha[:, l:l + 1]) * emb.item_layers[l][chosen[:, l]]
                  for l in range(n_layers)]  # each [B, d]
        neg = self.pool(layers)  # [B, d']
        with torch.no_grad():
            self.tally.add("neg_score", _scores(s_pooled, neg))
        return Negatives(None, neg, layers[0])

    def stats(self) -> dict[str, float]:
        return self.tally.read()


from .adversarial import AdvIRSampler, IRGANSampler

SAMPLERS = {"uniform": UniformSampler, "dns": DynamicHardSampler, "mixgcf": MixGCFSampler,
            "irgan": IRGANSampler, "advir": AdvIRSampler}


def build_sampler(name: str, pool_size: int, **options):
    """Sampler `name`; `options` are sampler-specific keyword arguments (SamplerConfig.options()).

    pool_size (H) is used by dns and mixgcf only."""
    if name == "uniform":
        return UniformSampler(**options)
    if name in ("dns", "mixgcf"):
        return SAMPLERS[name](pool_size, **options)
    if name in SAMPLERS:
        return SAMPLERS[name](**options)
    raise ValueError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
