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
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

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
    if x.device.type != "cpu":
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
    """

    @staticmethod
    def forward(ctx, adj: torch.Tensor, users: torch.Tensor, items: torch.Tensor,
                n_layers: int):
        U = users.shape[0]
        ctx.adj, ctx.n_layers, ctx.n_users = adj, n_layers, U
        # unused outputs (the layer parts, unless e.g. MixGCF scores them) get None gradients,
        # not zero-filled [U, d] / [I, d] tensors that backward would concatenate and add
        ctx.set_materialize_grads(False)
        x = torch.cat([users, items], 0)  # [N, d]
        outs = []
        for _ in range(n_layers):
            outs.append(spmm(adj, outs[-1] if outs else x))
        acc = x  # x_0 is not an output: the pooled sum takes its buffer
        for o in outs:
            acc += o
        acc /= n_layers + 1
        parts = [acc[:U], acc[U:]]
        for o in outs:
            parts += [o[:U], o[U:]]
        return tuple(parts)

    @staticmethod
    def backward(ctx, *grads):
        L, U = ctx.n_layers, ctx.n_users
        present = [g for g in grads if g is not None]
        if not present:
            return None, None, None, None
        g0 = present[0]
        N, d = ctx.adj.shape[0], g0.shape[1]
        if grads[0] is not None or grads[1] is not None:  # h = [gu; gi] / (L + 1), one pass
            h = g0.new_empty(N, d, layout=torch.strided)
            for g, part in ((grads[0], h[:U]), (grads[1], h[U:])):
                if g is None or g.is_sparse:  # zero, then the batch's rows (repeats summed)
                    part.zero_()
                    if g is not None:
                        part.index_add_(0, g._indices()[0], g._values() / (L + 1))
                else:
                    torch.div(g, L + 1, out=part)
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
            return None, None, None, None
        return None, acc[:U], acc[U:], None


def mean_propagate(adj: torch.Tensor, users: torch.Tensor, items: torch.Tensor, n_layers: int):
    """LightGCN with a symmetric Â (see above): (pooled users [U, d], pooled items [I, d],
    user layers (x_0..x_L restricted to users), item layers)."""
    if n_layers == 0:
        return users, items, (users,), (items,)
    out = _MeanPropagate.apply(adj, users, items, n_layers)
    return (out[0], out[1], (users, *out[2::2]), (items, *out[3::2]))
