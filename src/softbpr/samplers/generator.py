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


def draw(probs: torch.Tensor, k: int, generator: torch.Generator | None) -> torch.Tensor:
    """k independent draws per row of probs [c, n] (rows sum to 1) -> [c, k] int64.

    Inverse-CDF sampling: one uniform per draw and a binary search in the row's float64 CDF;
    zero-probability entries (masked positives) have empty intervals and are never drawn. Same
    distribution as torch.multinomial(..., replacement=True), several times faster on CPU for
    k = 1 (multinomial then draws an exponential per entry).
    """
    cdf = probs.double().cumsum(-1)  # [c, n]
    u = torch.rand(probs.shape[0], k, dtype=torch.float64, device=probs.device,
                   generator=generator) * cdf[:, -1:]
    return torch.searchsorted(cdf, u, right=True).clamp_(max=probs.shape[1] - 1)


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
    def train_mask(self, users: torch.Tensor) -> torch.Tensor:
        """Bool [c, n_items]: True at each row user's training positives."""
        deg = self.deg[users]  # [c]
        rows = torch.repeat_interleave(torch.arange(users.numel(), device=users.device), deg)
        first = torch.repeat_interleave(self.crow[users], deg)
        offs = torch.arange(rows.numel(), device=users.device) - torch.repeat_interleave(
            torch.cumsum(deg, 0) - deg, deg)
        mask = torch.zeros(users.numel(), self.item.shape[0], dtype=torch.bool,
                           device=users.device)
        mask[rows, self.col[first + offs]] = True
        return mask

    def logits(self, users: torch.Tensor) -> torch.Tensor:
        """g(u, j) for every item, −inf at u's training positives: [c, n_items] (with grad)."""
        out = torch.addmm(self.bias, self.user[users], self.item.T)  # [c, I]
        return out.masked_fill(self.train_mask(users), float("-inf"))

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
                              max_batches: int = 0, tally: Tally | None = None) -> None:
        """One G epoch against D's (detached) pooled embeddings d_user [U, d'], d_item [I, d'].

        Every user with positives, in shuffled batches of `batch_users`, one `opt` step per
        batch (max_batches > 0: the first max_batches batches). Per user u, S·|P_u| draws
        j_s ~ p_θ(·|u) (S = samples), each paired with u's positives i_s in turn, and
            L_G(u) = − mean_s log p_θ(j_s | u) · r(ŷ_uj_s, ŷ_ui_s)   (REINFORCE, no baseline),
        averaged over the batch's users (IRGAN's per-user loss, so users with many positives
        do not dominate), + reg · L2 of the rows used. A batch is scored in blocks of users
        whose gradients add up to the batch's gradient. gen_reward, gen_loss go to `tally`."""
        S = samples
        order = self.active[torch.randperm(self.active.numel(), device=self.active.device,
                                           generator=generator)]
        batches = torch.split(order, batch_users)
        if max_batches:
            batches = batches[:max_batches]
        for batch in batches:
            opt.zero_grad(set_to_none=True)
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
                    w = valid.float() / (S * deg.unsqueeze(1)).float() / batch.numel()
                logp = logp_all.gather(1, js)  # [c, K]
                loss = -(logp * r * w).sum()
                if reg:
                    loss = loss + reg * (self.user[users].pow(2).sum() + self.item[
                        js[valid]].pow(2).sum()) / 2 / batch.numel()
                loss.backward()
                if tally is not None:
                    tally.add("gen_reward", r[valid])
                    tally.add("gen_loss", -(logp.detach() * r)[valid])
            opt.step()
