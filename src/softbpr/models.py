"""Recommenders: each maps the training graph to per-layer and pooled user/item embeddings.

Every model is an `nn.Module` with
    propagate(graph) -> Embeddings       # one full pass; scores are dot products of the pooled
    pool(layers) -> Tensor               # per-layer rows [.., d] -> the pooled representation
    layer0_users(idx), layer0_items(idx) # ego rows, for the L2 penalty on the batch
    pooling: "mean" | "concat"           # how `pool` combines layers (MixGCF's hop mixing needs it)
    out_dim                              # width d' of the pooled representation
and a `MODELS` name -> class dict used only at the config/CLI edge. `model.train()/eval()`
switches NGCF's dropout on/off; the trainer and the evaluation set the mode.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from .graph import InteractionGraph, mean_propagate, normalized_adjacency, spmm, use_reordering


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
    sparse_rows: bool = False
    """user/item come from a propagation whose backward takes sparse (COO) gradients
    (graph.mean_propagate): `user_rows` / `item_rows` then gather with sparse gradients."""

    def user_rows(self, idx: torch.Tensor) -> torch.Tensor:
        """self.user[idx] (any index shape), with gradient.

        The same values as indexing. Its backward hands the propagation only the gathered rows
        (a sparse gradient) when `sparse_rows`, instead of one zero-filled [U, d'] tensor per
        gather that autograd then adds up: on Gowalla that is three [N, d]-sized passes less
        per batch. Indexing is used otherwise (e.g. MF, whose tables are the parameters)."""
        return _rows(self.user, idx, self.sparse_rows)

    def item_rows(self, idx: torch.Tensor) -> torch.Tensor:
        """self.item[idx], with gradient; see `user_rows`."""
        return _rows(self.item, idx, self.sparse_rows)

    def ego_user_rows(self, idx: torch.Tensor) -> torch.Tensor:
        """user_layers[0][idx]: the layer-0 (ego) rows, e.g. for the L2 penalty, equal to
        model.layer0_users(idx). With `sparse_rows` their gradient goes through the propagation,
        which adds it to its own (one dense gradient per table instead of two, and no
        zero-filled table per gather); plain indexing otherwise."""
        return _rows(self.user_layers[0], idx, self.sparse_rows)

    def ego_item_rows(self, idx: torch.Tensor) -> torch.Tensor:
        """item_layers[0][idx]; see `ego_user_rows`."""
        return _rows(self.item_layers[0], idx, self.sparse_rows)


def _rows(table: torch.Tensor, idx: torch.Tensor, sparse: bool) -> torch.Tensor:
    if sparse and table.requires_grad and torch.is_grad_enabled():
        return F.embedding(idx, table, sparse=True)
    return table[idx]


DENSE_SCORES_RATIO = 24
"""Scoring M items per row of a batch off a CPU: with I <= 24·M items, one [B, I] product and a
gather beat gathering the [B, M, d] rows (measured on a CPU, 1 thread, B 2048, d 64: ml-100k's
1,682 items with M = 128, 29 ms vs 134 ms a step with the backward). On a CPU both lose to
`_sampled_dot`."""


# torch warns once per process that "sparse CSR tensor support is in beta"; filtered once here
# rather than with catch_warnings() in every step (which resets every warning's once-only memory)
warnings.filterwarnings("ignore", message=".*[Ss]parse CSR tensor support is in beta.*",
                        category=UserWarning)


def _sampled_dot(u: torch.Tensor, table: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """[B, M] dot products <u[b], table[items[b, m]]> as one sampled dense product
    (`torch.sparse.sampled_addmm` over the [B, I] pattern of `items`), differentiable in u and
    table: the dot products come straight from the table's rows, without the [B, M, d] block
    that `F.embedding` + `bmm` writes and reads back, forward and backward. Same values up to
    float rounding (a different summation order). CPU only; needs M <= I (the kernel rejects a
    row with more stored entries than columns); items may repeat within a row."""
    B, M = items.shape
    lo, hi = torch.aminmax(items)
    if lo < 0 or hi >= table.shape[0]:  # the unchecked kernel would read outside the table
        raise IndexError(f"item ids must lie in [0, {table.shape[0]}), got {int(lo)}..{int(hi)}")
    crow = torch.arange(0, B * M + 1, M, device=u.device)
    pattern = torch.sparse_csr_tensor(crow, items.reshape(-1), u.new_zeros(B * M).detach(),
                                      size=(B, table.shape[0]), check_invariants=False)
    return torch.sparse.sampled_addmm(pattern, u, table.T, beta=0.0).values().view(B, M)


def _sampled_dot_applies(u: torch.Tensor, table: torch.Tensor, items: torch.Tensor) -> bool:
    return u.device.type == "cpu" and items.numel() > 0 and items.shape[1] <= table.shape[0]


def sampled_scores(u: torch.Tensor, table: torch.Tensor, items: torch.Tensor,
                   cosine: bool = False) -> torch.Tensor:
    """s[b, m] = <u[b], table[items[b, m]]> (cosine: divided by |table[items[b, m]]|, u being
    normalised by the caller), with gradients to u and table; u [B, d], table [I, d], items
    int64 [B, M] -> [B, M].

    The same values as gathering the [B, M, d] rows, without the passes over them that a
    gather, a per-row norm and their backward make. The norms are the table's rows' norms,
    gathered. On a CPU: `_sampled_dot`. Measured with the backward (1 thread, B 2048, d 64,
    table a non-leaf as in training), ms a step, sampled product vs the previous best of rows
    gathered and a [B, I] product: ml-100k's 1,682 items, M 32: 9.6 vs 18.5, M 128: 27.5 vs
    41.4; Tmall's 11,903 items, M 32: 9.3 vs 24.4, M 256: 100 vs 369. Elsewhere: with a small
    catalogue next to M (I <= DENSE_SCORES_RATIO·M) one [B, I] product and a gather, else the
    gathered rows."""
    M = items.shape[1]
    if _sampled_dot_applies(u, table, items):
        s = _sampled_dot(u, table, items)
    elif table.shape[0] <= DENSE_SCORES_RATIO * M:
        s = (u @ table.T).gather(1, items)  # [B, I] -> [B, M]
    else:
        s = torch.bmm(F.embedding(items, table), u.unsqueeze(2)).squeeze(2)
    if cosine:  # as F.normalize (eps 1e-12)
        s = s / table.norm(dim=1).clamp_min(1e-12)[items]
    return s


def candidate_scores(u: torch.Tensor, table: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
    """scores[b, k] = <u[b], table[cand[b, k]]> for u [B, d], table [I, d], cand int64 [B, H];
    no gradient (a sampler's choice).

    On a CPU `_sampled_dot` (~7x faster than gathered rows on ml-100k and Gowalla, 1 thread;
    13x for DNS(2, 200) on Tmall). Elsewhere, and where a row has more candidates than the
    table has rows: gather + bmm.
    """
    with torch.no_grad():
        u, table = u.detach(), table.detach()
        if _sampled_dot_applies(u, table, cand):
            return _sampled_dot(u, table, cand)
        return torch.bmm(F.embedding(cand, table), u.unsqueeze(2)).squeeze(2)


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

    pooling = "mean"

    def __init__(self, n_users: int, n_items: int, dim: int = 64, layers: int = 0,
                 init: str = "xavier", generator: torch.Generator | None = None):
        super().__init__()
        self.n_users, self.n_items, self.dim, self.layers = n_users, n_items, dim, 0
        self.user_emb = nn.Parameter(torch.empty(n_users, dim))
        self.item_emb = nn.Parameter(torch.empty(n_items, dim))
        _init(self.user_emb, init, generator)
        _init(self.item_emb, init, generator)

    @property
    def out_dim(self) -> int:
        """Width of the pooled representation (what scores are dot products of)."""
        return self.dim

    def propagate(self, graph: InteractionGraph | None = None) -> Embeddings:
        return Embeddings(self.user_emb, self.item_emb, (self.user_emb,), (self.item_emb,))

    def forward(self, graph: InteractionGraph | None = None) -> Embeddings:
        """= propagate(graph); lets DistributedDataParallel wrap any model."""
        return self.propagate(graph)

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
        # one fused autograd node: backward costs L sparse products, like the forward
        reo = graph.reordered() if use_reordering(graph, self.dim) else None  # large graphs
        user, item, user_layers, item_layers = mean_propagate(
            graph.adj, self.user_emb, self.item_emb, self.layers, reo)  # [U, d], [I, d], L+1
        return Embeddings(user, item, user_layers, item_layers, sparse_rows=self.layers > 0)


class _Spmm(torch.autograd.Function):
    """Y = M X for a sparse M given with its transpose Mt (backward: dX = Mt dY).

    NGCF's matrices are not symmetric (D^-1 (A + I), or any matrix after edge dropout), so
    graph.sym_spmm's shortcut does not apply; Mt has the same sparsity pattern with permuted
    values, so it costs one more value gather per forward, not a transpose."""

    @staticmethod
    def forward(ctx, m: torch.Tensor, mt: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.mt = mt
        return spmm(m, x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return None, None, spmm(ctx.mt, grad)


def ngcf_adjacency(R: sp.csr_matrix, variant: str) -> sp.csr_matrix:
    """The propagation matrix of NGCF over users then items, from the train matrix R [U, I].

    original: D^-1 (A + I) — `adj_type = norm`, the default of the NGCF authors' code (row
              normalised, with self-loops; the paper writes the symmetric D^-1/2 A D^-1/2 + I).
    mixgcf:   D^-1/2 A D^-1/2 without self-loops — MixGCF's port (the same Â as LightGCN).
    """
    if variant == "mixgcf":
        return normalized_adjacency(R)
    if variant != "original":
        raise ValueError(f"unknown NGCF variant {variant!r}; choose original or mixgcf")
    n = R.shape[0] + R.shape[1]
    A = sp.bmat([[None, R], [R.T, None]], format="csr", dtype=np.float32) + sp.eye(
        n, dtype=np.float32, format="csr")
    deg = np.asarray(A.sum(1)).ravel()  # >= 1 thanks to the self-loop
    out = (sp.diags((1.0 / deg).astype(np.float32)) @ A).tocsr()
    out.sort_indices()
    return out


class NGCF(MF):
    """NGCF (Wang et al., SIGIR 2019), as the authors' public code computes it.

    Per layer l = 1..L, with E^(0) the ego embeddings and M the propagation matrix:
        side    = M E^(l-1)                                   # normalised neighbours (+ self)
        E^(l)   = act(side W1 + b1) + act((E^(l-1) ⊙ side) W2 + b2)  # variant original
        E^(l)   = act(side W1 + b1 + (E^(l-1) ⊙ side) W2 + b2)       # variant mixgcf
        E^(l)   = message_dropout(E^(l))                      # train mode only
    act = LeakyReLU(0.2). The un-normalised E^(l) is propagated further; the stored layer
    output is its L2-row-normalised copy n(E^(l)). Final representation (pooling "concat"):
    [E^(0) | n(E^(1)) | ... | n(E^(L))], width dim * (L + 1) (256 for the default 64 x 3).

    The paper (eq. 7) writes E^(l) = act((L + I) E W1 + (L E ⊙ E) W2) with the symmetric
    L = D^-1/2 A D^-1/2 and one activation. The authors' TensorFlow code, which we follow
    (variant `original`, default), differs: M = D^-1 (A + I) (row-normalised with self-loops,
    `adj_type=norm`), the ⊙ term uses that same M E (so it includes E ⊙ E / (deg+1)), and the
    LeakyReLU is applied to each branch before summing. Variant `mixgcf` is MixGCF's port (the
    code behind MixGCF's NGCF numbers): the symmetric Â without self-loops (as LightGCN) and one
    LeakyReLU on the sum (as NGCF-PyTorch).

    Dropout (train mode only; both 0 by default, as MixGCF's README runs; the NGCF code runs
    message dropout 0.1 by default and node dropout 0.1 when its flag is set):
        node_dropout: each non-zero of M is dropped with this probability and the kept ones
            scaled by 1/(1-p), once per propagation (the reference's `_dropout_sparse` /
            `sparse_dropout`: despite the name it drops adjacency entries, not whole nodes).
        mess_dropout: inverted dropout on each layer's output E^(l) before normalisation.
    Masks are drawn from a generator owned by the model (seeded from the init generator), not
    from torch's global RNG. Weights W1, W2 [d, d] and biases b1, b2 [1, d] are Xavier-uniform,
    as both reference codes. Layer-0 rows carry the L2 penalty (MixGCF's choice; the TF code
    penalises the concatenated final vectors).
    """

    pooling = "concat"

    def __init__(self, n_users: int, n_items: int, dim: int = 64, layers: int = 3,
                 init: str = "xavier", generator: torch.Generator | None = None,
                 mess_dropout: float = 0.0, node_dropout: float = 0.0,
                 variant: str = "original"):
        super().__init__(n_users, n_items, dim, 0, init, generator)
        if variant not in ("original", "mixgcf"):
            raise ValueError(f"unknown NGCF variant {variant!r}; choose original or mixgcf")
        for name, p in (("mess_dropout", mess_dropout), ("node_dropout", node_dropout)):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {p}")
        self.layers, self.variant = layers, variant
        self.mess_dropout, self.node_dropout = float(mess_dropout), float(node_dropout)
        self.W1 = nn.ParameterList([nn.Parameter(torch.empty(dim, dim)) for _ in range(layers)])
        self.b1 = nn.ParameterList([nn.Parameter(torch.empty(1, dim)) for _ in range(layers)])
        self.W2 = nn.ParameterList([nn.Parameter(torch.empty(dim, dim)) for _ in range(layers)])
        self.b2 = nn.ParameterList([nn.Parameter(torch.empty(1, dim)) for _ in range(layers)])
        for p in (*self.W1, *self.b1, *self.W2, *self.b2):
            _init(p, "xavier", generator)
        seed = torch.randint(2**62, (1,), generator=generator) if generator is not None else 0
        self._drop_seed = int(seed)
        self._drop_gen: torch.Generator | None = None
        self._adj: tuple | None = None  # (graph, M, Mt values perm, M values, Mt crow/col)

    @property
    def out_dim(self) -> int:
        return self.dim * (self.layers + 1)

    def pool(self, layers: list[torch.Tensor] | tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Concatenate per-layer rows (each [..., d]) into [..., d * (L + 1)]."""
        return torch.cat(list(layers), -1)

    def _matrices(self, graph: InteractionGraph):
        """M and Mt as torch CSR on the graph's device, built once per graph (not saved)."""
        if self._adj is None or self._adj[0] is not graph:
            M = ngcf_adjacency(graph.train_csr, self.variant)
            # position k of M.data holds entry (r, c); perm[k'] = k for the same entry in M^T
            tag = sp.csr_matrix((np.arange(1, M.nnz + 1, dtype=np.float64), M.indices,
                                 M.indptr), shape=M.shape)
            T = tag.T.tocsr()
            T.sort_indices()
            dev = graph.device

            def as_t(a, dtype=np.int64):
                return torch.from_numpy(np.ascontiguousarray(a).astype(dtype)).to(dev)

            # int32 CSR indices on a CPU, as graph.InteractionGraph.adj (MKL takes them as is)
            idx = np.int32 if dev.type == "cpu" and M.nnz < 2**31 else np.int64
            vals = torch.from_numpy(M.data.astype(np.float32)).to(dev)
            perm = as_t(T.data.astype(np.int64) - 1)
            self._adj = (graph, as_t(M.indptr, idx), as_t(M.indices, idx), vals,
                         as_t(T.indptr, idx), as_t(T.indices, idx), perm)
        _, crow, col, vals, crow_t, col_t, perm = self._adj
        if self.training and self.node_dropout > 0:
            keep = torch.rand(vals.shape, generator=self._gen(vals.device),
                              device=vals.device) >= self.node_dropout
            vals = vals * keep / (1.0 - self.node_dropout)
        n = graph.n_users + graph.n_items
        # (the "beta" warning: filtered once, above _sampled_dot; the indices are scipy's)
        m = torch.sparse_csr_tensor(crow, col, vals, size=(n, n), check_invariants=False)
        mt = torch.sparse_csr_tensor(crow_t, col_t, vals[perm], size=(n, n),
                                     check_invariants=False)
        return m, mt

    def _gen(self, device: torch.device) -> torch.Generator:
        if self._drop_gen is None or self._drop_gen.device != device:
            self._drop_gen = torch.Generator(device=device).manual_seed(self._drop_seed)
        return self._drop_gen

    def propagate(self, graph: InteractionGraph) -> Embeddings:
        m, mt = self._matrices(graph)
        x = torch.cat([self.user_emb, self.item_emb], 0)  # [N, d]
        outs = [x]
        for k in range(self.layers):
            side = _Spmm.apply(m, mt, x)  # [N, d]
            bi = (x * side) @ self.W2[k] + self.b2[k]
            if self.variant == "original":
                x = F.leaky_relu(side @ self.W1[k] + self.b1[k], 0.2) + F.leaky_relu(bi, 0.2)
            else:
                x = F.leaky_relu(side @ self.W1[k] + self.b1[k] + bi, 0.2)
            if self.training and self.mess_dropout > 0:
                keep = torch.rand(x.shape, generator=self._gen(x.device), device=x.device)
                x = x * (keep >= self.mess_dropout) / (1.0 - self.mess_dropout)
            outs.append(F.normalize(x, p=2, dim=1))
        pooled = self.pool(outs)  # [N, d * (L + 1)]
        U = self.n_users
        return Embeddings(pooled[:U], pooled[U:], tuple(o[:U] for o in outs),
                          tuple(o[U:] for o in outs))


MODELS: dict[str, type[MF]] = {"mf": MF, "lightgcn": LightGCN, "ngcf": NGCF}


def build_model(name: str, n_users: int, n_items: int, dim: int, layers: int, init: str,
                generator: torch.Generator | None = None, **options) -> MF:
    """Model `name`; `options` are model-specific keyword arguments (ModelConfig.options())."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name](n_users, n_items, dim, layers, init, generator, **options)
