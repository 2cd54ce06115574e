"""The GAN samplers' generator G: an MF with item bias over each user's non-train items.

    g(u, j) = <p_u, q_j> + b_j,   p_θ(j | u) = softmax_j(g(u, ·) / T), 0 at u's training positives

`Generator` owns G's weights and the two ways it learns (the adapters in gan.py decide when):
- `pretrain`: DNS-BPR on the training pairs (IRGAN starts G from a DNS-trained MF);
- `policy_gradient_epoch`: REINFORCE against a frozen discriminator D, with a reward function
  r(ŷ_uj, ŷ_ui) of D's scores (IRGAN's pointwise or pairwise reward).
Every pass over users × items is cut into blocks of about 2^20 scores on CPU (2^24 on GPU) by
`user_chunks`; the results do not depend on the block size beyond the random stream.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..graph import InteractionGraph
from .base import Tally, uniform_candidates

Reward = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (ŷ_uj, ŷ_ui) -> r, same shape


DRAW_BLOCK = 32
"""Items per block of `inverse_cdf`'s two-level search."""


def draw(probs: torch.Tensor, k: int, generator: torch.Generator | None) -> torch.Tensor:
    """k independent draws per row of probs [c, n] (rows sum to 1) -> [c, k] int64.

    Inverse-CDF sampling (`inverse_cdf`): one float64 uniform per draw. Zero-probability entries
    (masked positives) have empty intervals and are never drawn. Same distribution as
    torch.multinomial(..., replacement=True), several times faster on CPU for k = 1
    (multinomial then draws an exponential per entry).
    """
    u = torch.rand(probs.shape[0], k, dtype=torch.float64, device=probs.device,
                   generator=generator)
    return inverse_cdf(probs, u)


def inverse_cdf(probs: torch.Tensor, u: torch.Tensor, block: int = DRAW_BLOCK) -> torch.Tensor:
    """For each row b and u[b, m] in [0, 1): the first j with CDF_b(j) > u[b, m] · CDF_b(n − 1),
    CDF_b the float64 running sum of probs[b] (non-negative, any scale) -> [c, k] int64.

    The pick always has probs[b, j] > 0: the target is kept below the row's total, and a float64
    running sum of non-negative terms only grows at a positive term. When k · block is small
    next to n, two levels: float64 sums of blocks of `block` entries, a search among the blocks'
    running sums, then a running sum inside the chosen block only (c · (n / block + k · block)
    sequential additions instead of c · n, and no float64 copy of the rows: on Tmall's
    [88, 11903] blocks with k = 20, 1.4 vs 11.5 ms, 1 thread on the busy 2-core VM). The same
    pick as one running sum over the row except where a target lies within float64 rounding of
    an interval's end.
    """
    c, n = probs.shape
    if 2 * u.shape[1] * block > n:  # many draws per row: one running sum over the row
        cdf = probs.cumsum(-1, dtype=torch.float64)  # [c, n]
        return torch.searchsorted(cdf, _below(u * cdf[:, -1:], cdf[:, -1:]), right=True)
    full = n // block * block  # entries in whole blocks; the rest (< block) is one more block
    sums = probs[:, :full].reshape(c, -1, block).sum(-1, dtype=torch.float64)  # (a view)
    if full < n:
        sums = torch.cat([sums, probs[:, full:].sum(-1, keepdim=True, dtype=torch.float64)], 1)
    bcdf = sums.cumsum(-1)  # [c, nb] running block sums
    t = _below(u * bcdf[:, -1:], bcdf[:, -1:])  # [c, k] targets, below the row's total
    blk = torch.searchsorted(bcdf, t, right=True)  # [c, k]: bcdf[blk - 1] <= t < bcdf[blk]
    r = t - torch.where(blk > 0, bcdf.gather(1, (blk - 1).clamp_min(0)), 0.0)  # >= 0
    cols = blk.unsqueeze(-1) * block + torch.arange(block, device=probs.device)  # [c, k, block]
    inner = probs.gather(1, cols.view(c, -1).clamp(max=n - 1)).view(cols.shape)
    inner = inner.masked_fill(cols >= n, 0.0)  # past the row's end: nothing
    icdf = inner.cumsum(-1, dtype=torch.float64)  # running sums inside the chosen blocks
    r = _below(r, icdf[..., -1])  # rounding: stay inside the block (its total is > 0)
    off = torch.searchsorted(icdf, r.unsqueeze(-1), right=True).squeeze(-1)
    return blk * block + off


def _below(t: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
    """t, clamped to the largest float64 below `total` (a product u · total can round up to
    total, and a block's inner running sum can round below the block sum)."""
    return torch.minimum(t, torch.nextafter(total, torch.zeros_like(total)))


class Generator(nn.Module):
    """G = MF with item bias on the graph's users and items (its device).

    Parameters: user [U, dim], item [I, dim] ~ U(±init_delta) (IRGAN's INIT_DELTA), bias [I] = 0.
    The training positives (CSR: `crow`, `col`, `deg`; `active` = users with positives) mask
    every distribution G defines. max_chunk_scores bounds one [users, n_items] score block
    (None: 2^20 on CPU, 2^24 on GPU).
    """

    def __init__(self, graph: InteractionGraph, dim: int, init_delta: float = 0.05,
                 generator: torch.Generator | None = None, max_chunk_scores: int | None = None):
        super().__init__()
        dev = graph.device

        def uniform(n):  # IRGAN init: U(-δ, δ)
            return torch.empty(n, dim, device=dev).uniform_(-init_delta, init_delta,
                                                              generator=generator)

        self.user = nn.Parameter(uniform(graph.n_users))
        self.item = nn.Parameter(uniform(graph.n_items))
        self.bias = nn.Parameter(torch.zeros(graph.n_items, device=dev))
        self.graph = graph
        # score blocks of 2^20 entries keep a CPU's working set in cache (2^24: 2.5x slower
        # on Gowalla); on a GPU larger blocks mean fewer kernel launches
        self.chunk = max_chunk_scores or (1 << 24 if dev.type == "cuda" else 1 << 20)
        R = graph.train_csr
        self.crow = torch.from_numpy(R.indptr.astype("int64")).to(dev)  # [U + 1]
        self.col = torch.from_numpy(R.indices.astype("int64")).to(dev)  # [nnz]
        self.deg = self.crow[1:] - self.crow[:-1]  # [U] training positives per user
        self.active = torch.nonzero(self.deg).squeeze(1)  # users with positives

    # -- the distribution -----------------------------------------------------------------
    def train_positions(self, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(row, item) of every training positive of the row users: two int64 [nnz of users]."""
        deg = self.deg[users]  # [c]
        rows = torch.repeat_interleave(torch.arange(users.numel(), device=users.device), deg)
        first = torch.repeat_interleave(self.crow[users], deg)
        offs = torch.arange(rows.numel(), device=users.device) - torch.repeat_interleave(
            torch.cumsum(deg, 0) - deg, deg)
        return rows, self.col[first + offs]

    def logits(self, users: torch.Tensor) -> torch.Tensor:
        """g(u, j) for every item, −inf at u's training positives: [c, n_items] (with grad;
        the −inf are written in place, so no [c, n_items] mask or second block is made)."""
        out = torch.addmm(self.bias, self.user[users], self.item.T)  # [c, I]
        return out.index_put_(self.train_positions(users), out.new_tensor(float("-inf")))

    def probabilities(self, users: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        """softmax(g(u, ·) / T) over items (0 at training positives), [c, n_items], no grad."""
        with torch.no_grad():
            return torch.softmax(self.logits(users) / temperature, -1)

    def user_chunks(self, users: torch.Tensor, size: int | None = None):
        """`users` in blocks whose [block, n_items] scores fit the chunk bound."""
        c = max(1, self.chunk // self.item.shape[0])
        return torch.split(users, c if size is None else max(1, min(size, c)))

    # -- learning -------------------------------------------------------------------------
    def pretrain(self, epochs: int, lr: float, reg: float, batch: int, candidates: int,
                 generator: torch.Generator | None, max_batches: int = 0) -> None:
        """DNS-BPR on the training pairs (IRGAN's cf_dns.py, without bias: b stays 0).

        Per epoch, shuffled batches of `batch` pairs (the first max_batches when > 0); per pair
        the highest-scored of `candidates` uniform non-train items is the negative; the loss is
        BPR + reg · (||p_u||² + ||q_i||² + ||q_j||²) / 2 per pair, minimised by lazy Adam."""
        if epochs == 0:
            return
        graph, dev = self.graph, self.graph.device
        R = graph.train_csr.tocoo()
        pu = torch.from_numpy(R.row.astype("int64")).to(dev)
        pi = torch.from_numpy(R.col.astype("int64")).to(dev)
        P, Q = self.user, self.item
        # sparse row gradients + lazy Adam: a step costs O(batch), not O(table)
        opt = torch.optim.SparseAdam([P, Q], lr=lr)
        starts = range(0, pu.numel(), batch)
        if max_batches:
            starts = starts[:max_batches]
        for _ in range(epochs):
            perm = torch.randperm(pu.numel(), device=dev, generator=generator)
            for s in starts:
                u, i = pu[perm[s:s + batch]], pi[perm[s:s + batch]]
                cand = uniform_candidates(graph, u, candidates, generator)  # [b, candidates]
                with torch.no_grad():  # DNS: the candidate the current MF scores highest
                    sc = (P[u].unsqueeze(1) * Q[cand]).sum(-1)  # [b, candidates]
                    j = cand.gather(1, sc.argmax(1, keepdim=True)).squeeze(1)
                eu = F.embedding(u, P, sparse=True)
                ei, ej = F.embedding(i, Q, sparse=True), F.embedding(j, Q, sparse=True)
                loss = -F.logsigmoid((eu * (ei - ej)).sum(-1)).mean() + reg * (
                    eu.pow(2).sum() + ei.pow(2).sum() + ej.pow(2).sum()) / 2 / u.numel()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        P.grad = Q.grad = None

    def policy_gradient_epoch(self, d_user: torch.Tensor, d_item: torch.Tensor, reward: Reward,
                              opt: torch.optim.Optimizer, samples: int, batch_users: int,
                              reg: float, generator: torch.Generator | None,
                              max_batches: int = 0, tally: Tally | None = None,
                              per_user_steps: bool = False) -> None:
        """One G epoch against D's (detached) pooled embeddings d_user [U, d'], d_item [I, d'].

        Every user with positives, in shuffled batches of `batch_users`, one `opt` step per
        batch (max_batches > 0: the first max_batches batches). Per user u, S·|P_u| draws
        j_s ~ p_θ(·|u) (S = samples), each paired with u's positives i_s in turn, and
            L_G(u) = − mean_s log p_θ(j_s | u) · r(ŷ_uj_s, ŷ_ui_s)   (REINFORCE, no baseline),
        averaged over the batch's users (IRGAN's per-user loss, so users with many positives
        do not dominate), + reg · L2 of the rows used. per_user_steps: the sum over the batch's
        users instead of the mean, so that a plain SGD step of lr equals one step of lr per user
        (IRGAN's batch-1 SGD) to first order. A batch is scored in blocks of users whose
        gradients add up to the batch's gradient. gen_reward, gen_loss go to `tally`."""
        S = samples
        order = self.active[torch.randperm(self.active.numel(), device=self.active.device,
                                           generator=generator)]
        batches = torch.split(order, batch_users)
        if max_batches:
            batches = batches[:max_batches]
        for batch in batches:
            opt.zero_grad(set_to_none=True)
            n = 1 if per_user_steps else batch.numel()  # the loss: sum or mean over users
            for users in self.user_chunks(batch):
                deg = self.deg[users]  # [c]
                K = S * int(deg.max())
                logp_all = torch.log_softmax(self.logits(users), -1)  # [c, I], grad
                with torch.no_grad():
                    js = draw(logp_all.detach().exp(), K, generator)  # [c, K] from p_θ
                    k = torch.arange(K, device=users.device)
                    valid = k.unsqueeze(0) < S * deg.unsqueeze(1)  # S·|P_u| draws per user
                    slot = self.crow[users].unsqueeze(1) + k.unsqueeze(0) % deg.unsqueeze(1)
                    pos = self.col[slot]  # [c, K]: the user's positives in turn
                    du = d_user[users.unsqueeze(1).expand(-1, K)[valid]]  # D: valid draws only
                    r = torch.zeros(js.shape, device=js.device)
                    r[valid] = reward((du * d_item[js[valid]]).sum(-1),
                                      (du * d_item[pos[valid]]).sum(-1))
                    w = valid.float() / (S * deg.unsqueeze(1)).float() / n
                logp = logp_all.gather(1, js)  # [c, K]
                loss = -(logp * r * w).sum()
                if reg:
                    loss = loss + reg * (self.user[users].pow(2).sum() + self.item[
                        js[valid]].pow(2).sum()) / 2 / n
                loss.backward()
                if tally is not None:
                    tally.add("gen_reward", r[valid])
                    tally.add("gen_loss", -(logp.detach() * r)[valid])
            opt.step()
