"""Full-ranking evaluation: every item is a candidate except the user's known items.

For a user u with held-out items T_u (|T_u| >= 1), known items M_u (masked: train items, plus
valid items when scoring test) and the top-K list R_u of the remaining items by score:

    Recall@K(u) = |R_u ∩ T_u| / |T_u|
    NDCG@K(u)   = DCG / IDCG,  DCG = Σ_{r=1..K} [R_u[r] ∈ T_u] / log2(r + 1),
                               IDCG = Σ_{r=1..min(K, |T_u|)} 1 / log2(r + 1)

Both are averaged over users with at least one held-out item; users without are skipped (not
counted as zeros). Masked items get score −inf before top-K and can never count as a hit.
Ties in score are broken by `torch.topk` (lowest index first on CPU).
Users are scored in batches of `batch_users` (default: about 2^25 scores at a time, i.e.
128 MiB of float32), so memory stays bounded on large catalogues.

Sampled evaluation (large data): `RankingTask.build(..., sample=n, seed=s)` scores a seeded
random subset of n of the users with held-out items (the same subset at every evaluation), so a
validation over 1M users costs what one over n does; the means are then estimates (standard
error about std / sqrt(n): ~0.002 for NDCG@50 at n = 10,000). `task.sampled` and
`task.n_total` say so; model selection may use it, the final test should not (score all users).
`score_task(..., progress=f)` calls f(users_done) after each batch (see `progress.ProgressLog`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F


def _keys(csr: sp.csr_matrix, n_items: int) -> np.ndarray:
    rows = np.repeat(np.arange(csr.shape[0], dtype=np.int64), np.diff(csr.indptr))
    return np.sort(rows * n_items + csr.indices.astype(np.int64))


def ranking_vectors(user_vecs: torch.Tensor, item_vecs: torch.Tensor, rank_by: str = "dot"
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """The vectors whose dot product is the ranking score: as given (rank_by = dot), or scaled
    to unit length (cosine; a zero row stays zero)."""
    if rank_by == "dot":
        return user_vecs, item_vecs
    if rank_by == "cosine":
        return F.normalize(user_vecs, dim=-1), F.normalize(item_vecs, dim=-1)
    raise ValueError(f"rank_by must be dot or cosine, got {rank_by!r}")


def topk_masked(user_vecs: torch.Tensor, item_vecs: torch.Tensor, users: torch.Tensor,
                mask_indptr: torch.Tensor, mask_indices: torch.Tensor, k: int,
                out: torch.Tensor | None = None):
    """Top-k items (scores, indices) for `users`, with their masked items set to −inf.

    user_vecs: [B, d] vectors of `users`; item_vecs: [I, d]; mask as CSR arrays over all users.
    out: optional [>= B, I] buffer for the scores (overwritten), reused across batches: on a CPU
    a fresh 128 MiB score block is page-faulted in on every batch, which costs about as much as
    the matmul that fills it.
    """
    if out is None:
        scores = user_vecs @ item_vecs.T  # [B, I]
    else:
        scores = torch.mm(user_vecs, item_vecs.T, out=out[:user_vecs.shape[0]])
    starts, ends = mask_indptr[users], mask_indptr[users + 1]
    lens = ends - starts
    if int(lens.sum()) > 0:
        rows = torch.repeat_interleave(torch.arange(len(users), device=scores.device), lens)
        offs = torch.arange(int(lens.sum()), device=scores.device) - torch.repeat_interleave(
            torch.cumsum(lens, 0) - lens, lens)
        cols = mask_indices[torch.repeat_interleave(starts, lens) + offs]
        scores[rows, cols] = float("-inf")
    return chunked_topk(scores, min(k, scores.shape[1]))


def chunked_topk(scores: torch.Tensor, k: int, chunk: int = 64):
    """Exact row-wise top-k (values, indices) of scores [B, I]; about 2x cheaper than topk on a
    CPU for catalogues of tens of thousands of items.

    Why it is exact: cut each row into chunks of `chunk` columns (the last I mod chunk columns
    stay candidates as they are); every top-k element of a full chunk lies in one of the k full
    chunks with the largest maxima, otherwise k chunk maxima (k distinct elements) would all beat
    it. So one cheap pass takes the chunk maxima, then the top-k chunks are copied as blocks and
    the top-k of those k * chunk (+ remainder) candidates is the answer. Equal scores may come
    out in another order than torch.topk's.
    """
    B, I = scores.shape
    n_full = I // chunk
    if n_full <= 2 * k or k == 0:  # too few chunks to gain anything
        return torch.topk(scores, k, dim=1)
    main = scores[:, :n_full * chunk].view(B, n_full, chunk)
    top_chunks = torch.topk(main.amax(2), k, dim=1).indices  # [B, k]
    rows = torch.arange(B, device=scores.device).unsqueeze(1)
    cand = main[rows, top_chunks].view(B, k * chunk)  # [B, k * chunk], block copies
    rem = I - n_full * chunk
    if rem:
        cand = torch.cat([cand, scores[:, n_full * chunk:]], 1)
    vals, pos = torch.topk(cand, k, dim=1)
    in_block = pos < k * chunk
    block_pos = pos.clamp(max=k * chunk - 1)
    idx = top_chunks.gather(1, block_pos // chunk) * chunk + block_pos % chunk
    idx = torch.where(in_block, idx, pos - k * chunk + n_full * chunk)
    return torch.return_types.topk((vals, idx))


@dataclass(frozen=True)
class RankingTask:
    """What one evaluation needs besides the embeddings, on the device, built once per split.

    users: int64 [n] users with held-out items (this rank's share); n_true: float64 [n] their
    |T_u|; truth_keys: sorted user * n_items + item of the held-out pairs; mask_*: the masked
    items as CSR arrays over all users (int32 indices when the catalogue allows: half the
    memory of int64 at 80M train pairs, and indexing takes either).
    n_total: users with held-out items in all; sampled: whether `users` is a seeded sample of
    them (all ranks together score the sample).
    """

    users: torch.Tensor
    n_true: torch.Tensor
    truth_keys: torch.Tensor
    mask_indptr: torch.Tensor
    mask_indices: torch.Tensor
    n_items: int
    n_total: int = 0
    sampled: bool = False

    @classmethod
    def build(cls, truth: sp.csr_matrix, mask: sp.csr_matrix, device,
              part: tuple[int, int] = (0, 1), sample: int = 0, seed: int = 0) -> RankingTask:
        """sample > 0: score a seeded random subset of `sample` users (all when there are
        not more), the same for every rank before the rank's share is taken."""
        n_items = truth.shape[1]
        n_true = np.diff(truth.indptr)
        users = np.flatnonzero(n_true > 0)
        n_total = len(users)
        sampled = 0 < sample < n_total
        if sampled:
            users = np.sort(np.random.default_rng(seed).choice(users, size=sample,
                                                               replace=False))
        users = users[part[0]::part[1]]
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device)
        idx = np.int32 if n_items < 2**31 else np.int64
        return cls(t(users.astype(np.int64)), t(n_true[users].astype(np.float64)),
                   t(_keys(truth, n_items)), t(mask.indptr.astype(np.int64)),
                   t(mask.indices.astype(idx)), n_items, n_total, sampled)


@torch.no_grad()
def rank_metrics(user_vecs: torch.Tensor, item_vecs: torch.Tensor, truth: sp.csr_matrix,
                 mask: sp.csr_matrix, ks=(20, 50), batch_users: int | None = None,
                 part: tuple[int, int] = (0, 1), sample: int = 0, seed: int = 0,
                 progress: Callable[[int], None] | None = None) -> dict[str, float]:
    """Mean Recall@K and NDCG@K (module docstring) over users with held-out items.

    user_vecs [U, d], item_vecs [I, d]: the final representations; truth, mask: [U, I] CSR.
    part = (rank, world): evaluate only every world-th of those users, from rank (distributed
    evaluation; the caller sums mean * users over ranks). sample, seed: a seeded subset of
    users (see `RankingTask.build`); progress: see `score_task`.
    Returns {"recall@K": ..., "ndcg@K": ..., "users": n_evaluated}.
    """
    task = RankingTask.build(truth, mask, item_vecs.device, part, sample, seed)
    return score_task(task, user_vecs, item_vecs, ks, batch_users, progress)


@torch.no_grad()
def score_task(task: RankingTask, user_vecs: torch.Tensor, item_vecs: torch.Tensor,
               ks=(20, 50), batch_users: int | None = None,
               progress: Callable[[int], None] | None = None) -> dict[str, float]:
    """`rank_metrics` on a prepared `RankingTask` (the trainer reuses one per split).

    progress: called with the number of this rank's users scored so far after each batch (no
    host sync: e.g. `progress.ProgressLog(task.users.numel(), "evaluate valid", log)`).
    """
    dev = item_vecs.device
    n_items = task.n_items
    ks = sorted({int(k) for k in ks})
    kmax = min(max(ks), n_items)
    n = task.users.numel()
    if n == 0:
        return {**{f"recall@{k}": float("nan") for k in ks},
                **{f"ndcg@{k}": float("nan") for k in ks}, "users": 0}
    if batch_users is None:
        batch_users = max(1, min(4096, (1 << 25) // max(1, n_items)))
    discount = 1.0 / torch.log2(torch.arange(2, kmax + 2, device=dev, dtype=torch.float64))
    ideal_cum = torch.cumsum(discount, 0)  # IDCG for min(K, |T|) = n ones
    sums = torch.zeros(2 * len(ks), dtype=torch.float64, device=dev)  # recall@k..., ndcg@k...
    truth_keys = task.truth_keys
    buf = torch.empty(min(batch_users, n), n_items, device=dev,
                      dtype=torch.result_type(user_vecs, item_vecs))  # scores, reused
    for start in range(0, n, batch_users):
        users = task.users[start:start + batch_users]
        nt = task.n_true[start:start + batch_users]
        vals, idx = topk_masked(user_vecs[users], item_vecs, users, task.mask_indptr,
                                task.mask_indices, kmax, out=buf)
        keys = users.unsqueeze(1) * n_items + idx  # [B, kmax]
        pos = torch.searchsorted(truth_keys, keys).clamp_(max=truth_keys.numel() - 1)
        hitf = ((truth_keys[pos] == keys) & torch.isfinite(vals)).double()  # [B, kmax]
        gains = hitf * discount  # [B, kmax]
        for j, k in enumerate(ks):
            kk = min(k, kmax)
            sums[j] += (hitf[:, :kk].sum(1) / nt).sum()
            idcg = ideal_cum[(torch.clamp(nt, max=kk) - 1).long()]
            sums[len(ks) + j] += (gains[:, :kk].sum(1) / idcg).sum()
        if progress is not None:
            progress(min(start + batch_users, n))
    vals = (sums / n).tolist()  # the one host sync
    out = {f"recall@{k}": vals[j] for j, k in enumerate(ks)}
    out.update({f"ndcg@{k}": vals[len(ks) + j] for j, k in enumerate(ks)})
    out["users"] = n
    return out
