"""The training interaction graph: positives for samplers and masks, and LightGCN's adjacency.

The bipartite adjacency over N = n_users + n_items nodes (users first, then items) is
    A = [[0, R], [R^T, 0]],   Â = D^-1/2 A D^-1/2,   D = diag(row sums of A),
built from the training pairs only, without self-loops; a node of degree 0 gets a zero row.
Â is symmetric, which `propagate` uses: the gradient of Y = Â X is dL/dX = Â^T dL/dY = Â dL/dY,
so the backward pass is one more sparse x dense product with the same matrix (stock autograd
through sparse CSR matmul builds Â^T and is several times slower on CPU).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from scipy.sparse.csgraph import reverse_cuthill_mckee

from .split import Pairs


def spmm(adj: torch.Tensor, x: torch.Tensor, add: torch.Tensor | None = None,
         out: torch.Tensor | None = None) -> torch.Tensor:
    """adj @ x (+ add) for a sparse adj and a dense x, without autograd.

    On a CPU with a CSR adj, row r of the product is the weighted sum of the rows of x listed in
    row r of adj: exactly `F.embedding_bag` (mode "sum", CSR column indices as the bag contents,
    row pointers as the offsets, adj's values as the per-sample weights), whose FBGEMM kernel
    (prefetching, vectorised over the 64 columns) is 2-2.5x faster than MKL's sparse x dense
    product behind `torch.addmm` / `torch.sparse.mm` on these CPUs (Gowalla and ml-100k, 1
    thread, d = 64). Each row's sum runs in the stored column order, as MKL's, but with fused
    multiply-adds: results differ from `torch.sparse.mm` by float rounding (relative ~1e-7),
    not more. Other layouts or a dtype other than adj's: `torch.addmm` into `out` (a buffer to
    reuse; must not overlap x or add). Other devices: `torch.sparse.mm`. Adding `add` in place
    afterwards equals `adj @ x + add` bit for bit.
    """
    x = x.contiguous()
    if x.shape[1] == 0:  # embedding_bag's multi-threaded kernel rejects zero-width rows
        out = x.new_zeros(adj.shape[0], 0)
    elif x.device.type != "cpu":
        out = torch.sparse.mm(adj, x)
    elif adj.layout == torch.sparse_csr and adj.dtype == x.dtype:
        out = F.embedding_bag(adj.col_indices(), x, adj.crow_indices(), mode="sum",
                              per_sample_weights=adj.values(), include_last_offset=True)
    else:
        if out is None:
            out = x.new_empty(adj.shape[0], x.shape[1])
        torch.addmm(out, adj, x, beta=0, out=out)
    return out if add is None else out.add_(add)


class _SymSpmm(torch.autograd.Function):
    """Y = Â X for a symmetric sparse Â; backward reuses Â (no transpose)."""

    @staticmethod
    def forward(ctx, adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.adj = adj
        return spmm(adj, x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return None, spmm(ctx.adj, grad)


def sym_spmm(adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Â @ x with a backward that costs one more Â @ (.) — valid only for symmetric Â."""
    return _SymSpmm.apply(adj, x)


BITMAP_MAX_BITS = 1 << 31  # 256 MiB of bitmap at most (Gowalla: 1.2e9 bits = 153 MiB)


@dataclass
class InteractionGraph:
    """Training positives on a device.

    pos_keys: sorted int64 [nnz] keys user * n_items + item of the train pairs.
    pos_bits: the same set as a bitmap (int64 words, bit k of word w = key 64 w + k) when
        n_users * n_items <= BITMAP_MAX_BITS (a gather instead of a binary search: ~10x faster
        membership tests for samplers); None for larger catalogues.
    adj: normalised adjacency Â as a torch sparse CSR tensor [N, N] (float32; int32 indices on
        a CPU).
    train_csr: the same positives as a scipy CSR [n_users, n_items] (host copy, for masks).
    free_keys, row_start: the index that `uniform_candidates` draws non-positives with, without
        rejection: for user u with positives p_0 < p_1 < ... (row k of train_csr), free_keys
        holds u * n_items + (p_j - j) (the number of non-positives below p_j), sorted, and
        row_start[u] = the position of u's first entry. The r-th non-positive item of u (r
        from 0) is r + #{j : p_j - j <= r}, one binary search.
    """

    n_users: int
    n_items: int
    pos_keys: torch.Tensor
    adj: torch.Tensor
    train_csr: sp.csr_matrix
    user_degree: torch.Tensor  # int64 [n_users]
    free_keys: torch.Tensor  # int64 [nnz]
    row_start: torch.Tensor  # int64 [n_users]
    pos_bits: torch.Tensor | None = None
    _reordered: Reordered | None = field(default=None, init=False, repr=False, compare=False)

    def reordered(self) -> Reordered:
        """Â in a locality order of the nodes (built once; see `Reordered`)."""
        if self._reordered is None:
            self._reordered = Reordered.of(self.adj, self.n_users)
        return self._reordered

    @classmethod
    def from_pairs(cls, train: Pairs, n_users: int, n_items: int,
                   device: torch.device | str = "cpu") -> InteractionGraph:
        device = torch.device(device)
        R = train.csr(n_users, n_items)
        deg = np.asarray(R.sum(1)).ravel()
        full = deg >= n_items
        if full.any():
            raise ValueError(f"{int(full.sum())} users interacted with every item: no negative "
                             "item exists for them")
        adj = normalized_adjacency(R)
        R.sort_indices()
        row_of = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(R.indptr))
        keys = R.indices.astype(np.int64) + row_of * n_items  # sorted: rows, then items
        rank_in_row = np.arange(R.nnz, dtype=np.int64) - R.indptr[:-1].astype(np.int64)[row_of]
        free = keys - rank_in_row  # u * n_items + (p_j - j): non-decreasing as well
        # int32 indices on a CPU: the MKL sparse kernel takes them as they are (int64 ones are
        # converted on every product, ~10% of its time on Gowalla)
        idx = np.int32 if device.type == "cpu" and adj.nnz < 2**31 else np.int64
        with warnings.catch_warnings():  # "sparse CSR support is in beta" on every build
            warnings.simplefilter("ignore", UserWarning)
            t_adj = torch.sparse_csr_tensor(
                torch.from_numpy(adj.indptr.astype(idx)),
                torch.from_numpy(adj.indices.astype(idx)),
                torch.from_numpy(adj.data.astype(np.float32)),
                size=adj.shape,
            ).to(device)
        bits = None
        if n_users * n_items <= BITMAP_MAX_BITS:
            words = np.zeros((n_users * n_items + 63) // 64, dtype=np.uint64)
            np.bitwise_or.at(words, keys >> 6, np.left_shift(np.uint64(1), (keys & 63).astype(
                np.uint64)))
            bits = torch.from_numpy(words.view(np.int64)).to(device)
        return cls(n_users, n_items, torch.from_numpy(keys).to(device), t_adj, R,
                   torch.from_numpy(deg.astype(np.int64)).to(device),
                   torch.from_numpy(free).to(device),
                   torch.from_numpy(R.indptr[:-1].astype(np.int64)).to(device), bits)

    @property
    def device(self) -> torch.device:
        return self.pos_keys.device

    def is_positive(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Bool tensor (same shape as items): is (users, items) a training pair?

        users broadcasts against items (e.g. users [B, 1], items [B, H]).
        """
        keys = users * self.n_items + items
        if self.pos_bits is not None:
            if sys.byteorder == "little":  # bit k of word w is bit k & 7 of byte 8 w + k >> 3:
                # byte lookups with `take` (no advanced-indexing machinery), 1.5x faster
                b = torch.take(self.pos_bits.view(torch.uint8), keys >> 3)
                return b.bitwise_right_shift_((keys & 7).to(torch.uint8)).bitwise_and_(1).bool()
            return ((self.pos_bits[keys >> 6] >> (keys & 63)) & 1).bool()
        if self.pos_keys.numel() == 0:
            return torch.zeros_like(keys, dtype=torch.bool)
        idx = torch.searchsorted(self.pos_keys, keys).clamp_(max=self.pos_keys.numel() - 1)
        return self.pos_keys[idx] == keys


def normalized_adjacency(R: sp.csr_matrix) -> sp.csr_matrix:
    """D^-1/2 A D^-1/2 for A = [[0, R], [R^T, 0]] (no self-loops); zero-degree rows stay 0."""
    A = sp.bmat([[None, R], [R.T, None]], format="csr", dtype=np.float32)
    deg = np.asarray(A.sum(1)).ravel()
    with np.errstate(divide="ignore"):
        inv = np.where(deg > 0, deg ** -0.5, 0.0).astype(np.float32)
    Dm = sp.diags(inv)
    out = (Dm @ A @ Dm).tocsr()
    out.sort_indices()
    return out


def _dense(g: torch.Tensor | None) -> torch.Tensor | None:
    return g.to_dense() if g is not None and g.is_sparse else g


REORDER_MIN_BYTES = 1 << 22  # reorder when one [N, d] layer exceeds 4 MiB (Gowalla: 18 MiB)


@dataclass
class Reordered:
    """Â with its nodes renumbered for cache locality; the same products, bit for bit.

    The order is reverse Cuthill-McKee of Â (scipy), kept block-wise: users first, then items,
    each in RCM order, so that moving rows in and out is one gather per block. Neighbouring
    rows of the renumbered Â then read nearby rows of x: on Gowalla a product is ~20% faster
    (1 thread), for three [N, d] gathers per batch. Each row keeps its entries in Â's order
    (only relabelled), so every sum runs in the same order as with Â: identical results.

    order_u [U] / order_i [I]: the old user / item id at each new position of its block;
    rank_u / rank_i: the new position of each old id; adj: the renumbered Â (CSR, unsorted
    column indices within rows).
    """

    adj: torch.Tensor
    order_u: torch.Tensor
    order_i: torch.Tensor
    rank_u: torch.Tensor
    rank_i: torch.Tensor

    @classmethod
    def of(cls, adj: torch.Tensor, n_users: int) -> Reordered:
        crow, col = adj.crow_indices().cpu().numpy(), adj.col_indices().cpu().numpy()
        vals = adj.values().cpu().numpy()
        n = adj.shape[0]
        A = sp.csr_matrix((np.ones(col.size, dtype=np.int8), col, crow), shape=(n, n))
        rcm = reverse_cuthill_mckee(A, symmetric_mode=True).astype(np.int64)
        order = np.concatenate([rcm[rcm < n_users], rcm[rcm >= n_users]])
        rank = np.empty(n, dtype=np.int64)
        rank[order] = np.arange(n)
        lens = np.diff(crow)[order]
        new_crow = np.concatenate([[0], np.cumsum(lens)])
        # entries of old row order[k], in their stored order, become new row k
        src = np.repeat(crow[order] - new_crow[:-1], lens) + np.arange(new_crow[-1])
        dev, idt = adj.device, crow.dtype
        with warnings.catch_warnings():  # "sparse CSR support is in beta"
            warnings.simplefilter("ignore", UserWarning)
            radj = torch.sparse_csr_tensor(
                torch.from_numpy(new_crow.astype(idt)), torch.from_numpy(
                    rank[col[src]].astype(idt)), torch.from_numpy(vals[src]),
                size=adj.shape).to(dev)
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(dev)
        return cls(radj, t(order[:n_users]), t(order[n_users:] - n_users), t(rank[:n_users]),
                   t(rank[n_users:] - n_users))


class Layers(Sequence):
    """The per-layer outputs of a propagation, each turned into id order on first access.

    Item k is `first` for k = 0, else thunks[k - 1]() (computed once, recording autograd even
    when first read under no_grad, so that later uses with gradient still reach the layer)."""

    def __init__(self, first: torch.Tensor, thunks: list[Callable[[], torch.Tensor]]):
        self._items: list = [first, *thunks]
        self._done = [True] + [False] * len(thunks)

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, k):
        if isinstance(k, slice):
            return tuple(self[j] for j in range(*k.indices(len(self))))
        k = range(len(self))[k]
        if not self._done[k]:
            with torch.enable_grad():
                self._items[k] = self._items[k]()
            self._done[k] = True
        return self._items[k]


class _MeanPropagate(torch.autograd.Function):
    """LightGCN's whole propagation as one autograd node (Â symmetric).

    forward:  x_0 = [users; items], x_l = Â x_{l-1} (l = 1..L),
              pooled = (x_0 + ... + x_L) / (L + 1), returned split into user and item rows
    backward: with h = dpooled / (L + 1) and t_l = h + dx_l (the gradient reaching layer l
              directly, e.g. from MixGCF), dx_0 = Σ_l Â^l t_l, computed by Horner's rule
              acc = t_L; acc = t_l + Â acc (l = L-1..0): exactly L sparse products, like the
              forward. Returning the user and item parts as separate outputs (instead of
              slicing one [N, d] output) spares autograd two zero-filled [N, d] buffers per
              backward, which on Gowalla cost more than a sparse product.

    The pooled gradients may arrive sparse (COO, from `Embeddings.user_rows` / `item_rows`):
    only the batch's rows are then written into h (repeated rows summed), instead of autograd
    zero-filling one [U, d] / [I, d] tensor per gather and adding them up.

    With `reo` (a `Reordered`), everything runs on the renumbered Â: x_0 is gathered into the
    new order, the pooled outputs and dx_0 are gathered back into id order, and the layer
    outputs are returned in the new order (mean_propagate turns them back on first use).
    """

    @staticmethod
    def forward(ctx, adj: torch.Tensor, users: torch.Tensor, items: torch.Tensor,
                n_layers: int, reo: Reordered | None = None):
        U = users.shape[0]
        ctx.adj, ctx.n_layers, ctx.n_users, ctx.reo = adj, n_layers, U, reo
        # unused outputs (the layer parts, unless e.g. MixGCF scores them) get None gradients,
        # not zero-filled [U, d] / [I, d] tensors that backward would concatenate and add
        ctx.set_materialize_grads(False)
        if reo is None:
            x = torch.cat([users, items], 0)  # [N, d]
        else:
            x = users.new_empty(adj.shape[0], users.shape[1])
            torch.index_select(users, 0, reo.order_u, out=x[:U])
            torch.index_select(items, 0, reo.order_i, out=x[U:])
        outs = []
        for _ in range(n_layers):
            outs.append(spmm(adj, outs[-1] if outs else x))
        acc = x  # x_0 is not an output: the pooled sum takes its buffer
        for o in outs:
            acc += o
        acc /= n_layers + 1
        if reo is None:
            parts = [acc[:U], acc[U:]]
        else:
            parts = [acc[:U].index_select(0, reo.rank_u), acc[U:].index_select(0, reo.rank_i)]
        for o in outs:
            parts += [o[:U], o[U:]]
        # x_0 itself, as outputs of this node (views of the inputs): gradients of the layer-0
        # rows (the L2 penalty's, from Embeddings.ego_user_rows / ego_item_rows, possibly
        # sparse) are then added to dx_0 here, instead of reaching the parameters separately
        return (*parts, users, items)

    @staticmethod
    def backward(ctx, *grads):
        L, U, reo = ctx.n_layers, ctx.n_users, ctx.reo
        present = [g for g in grads if g is not None]
        if not present:
            return None, None, None, None, None
        g0 = present[0]
        N, d = ctx.adj.shape[0], g0.shape[1]
        if grads[0] is not None or grads[1] is not None:  # h = [gu; gi] / (L + 1), one pass
            h = g0.new_empty(N, d, layout=torch.strided)
            orders = (None, None) if reo is None else (reo.order_u, reo.order_i)
            ranks = (None, None) if reo is None else (reo.rank_u, reo.rank_i)
            for g, part, order, rank in zip(grads[:2], (h[:U], h[U:]), orders, ranks):
                if g is None or g.is_sparse:  # zero, then the batch's rows (repeats summed)
                    part.zero_()
                    if g is not None:
                        rows = g._indices()[0]
                        part.index_add_(0, rows if rank is None else rank[rows],
                                        g._values() / (L + 1))
                elif order is None:
                    torch.div(g, L + 1, out=part)
                else:
                    torch.index_select(g, 0, order, out=part).div_(L + 1)
        else:
            h = None

        def full(l):  # [N, d] gradient reaching layer l directly (None = 0)
            gu, gi = _dense(grads[2 * l]), _dense(grads[2 * l + 1])
            if gu is None and gi is None:
                return None
            gu = torch.zeros(U, d, dtype=g0.dtype, device=g0.device) if gu is None else gu
            gi = torch.zeros(N - U, d, dtype=g0.dtype, device=g0.device) if gi is None else gi
            return torch.cat([gu, gi], 0)

        def term(l):  # gradient arriving at layer l (l >= 1), h included
            g = full(l)
            if h is None:
                return g
            return h if g is None else g.add_(h)

        acc, spare = term(L), None
        for l in range(L - 1, -1, -1):
            t = h if l == 0 else term(l)
            if acc is None:
                acc = t
            else:  # Â acc + t into a buffer of two steps back (acc may be h or t: not in place)
                prev, acc = acc, spmm(ctx.adj, acc, add=t, out=spare)
                spare = prev if prev is not h and prev is not t else None
        if acc is None:
            du = di = None
        elif reo is None:
            du, di = acc[:U], acc[U:]
        else:
            du, di = acc[:U].index_select(0, reo.rank_u), acc[U:].index_select(0, reo.rank_i)
        du = _add_rows(du, grads[2 * L + 2], U, d, g0)
        di = _add_rows(di, grads[2 * L + 3], N - U, d, g0)
        return None, du, di, None, None


def _add_rows(acc: torch.Tensor | None, g: torch.Tensor | None, n: int, d: int,
              like: torch.Tensor) -> torch.Tensor | None:
    """acc + g for a dense or sparse (COO) g; acc None = 0 (acc is updated in place)."""
    if g is None:
        return acc
    if acc is None:
        acc = torch.zeros(n, d, dtype=like.dtype, device=like.device)
    if g.is_sparse:
        return acc.index_add_(0, g._indices()[0], g._values())
    return acc.add_(g)


def mean_propagate(adj: torch.Tensor, users: torch.Tensor, items: torch.Tensor, n_layers: int,
                   reo: Reordered | None = None):
    """LightGCN with a symmetric Â (see above): (pooled users [U, d], pooled items [I, d],
    user layers (x_0..x_L restricted to users), item layers). With `reo` (Â renumbered, see
    `Reordered`; `adj` is then unused) the same numbers, the layers as `Layers`."""
    if n_layers == 0:
        return users, items, (users,), (items,)
    if reo is None:
        out = _MeanPropagate.apply(adj, users, items, n_layers)
        return (out[0], out[1], (out[-2], *out[2:-2:2]), (out[-1], *out[3:-2:2]))
    out = _MeanPropagate.apply(reo.adj, users, items, n_layers, reo)

    def back(t: torch.Tensor, rank: torch.Tensor):
        return lambda: t.index_select(0, rank)

    return (out[0], out[1], Layers(out[-2], [back(t, reo.rank_u) for t in out[2:-2:2]]),
            Layers(out[-1], [back(t, reo.rank_i) for t in out[3:-2:2]]))


def use_reordering(graph: InteractionGraph, dim: int) -> bool:
    """Reorder (see `Reordered`) on a CPU when one [N, dim] float32 layer exceeds
    REORDER_MIN_BYTES (below that the layers stay in the caches anyway)."""
    n = graph.n_users + graph.n_items
    return graph.device.type == "cpu" and n * dim * 4 > REORDER_MIN_BYTES
