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
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch


def _keys(csr: sp.csr_matrix, n_items: int) -> np.ndarray:
    rows = np.repeat(np.arange(csr.shape[0], dtype=np.int64), np.diff(csr.indptr))
    return np.sort(rows * n_items + csr.indices.astype(np.int64))


def topk_masked(user_vecs: torch.Tensor, item_vecs: torch.Tensor, users: torch.Tensor,
                mask_indptr: torch.Tensor, mask_indices: torch.Tensor, k: int):
    """Top-k items (scores, indices) for `users`, with their masked items set to −inf.

    user_vecs: [B, d] vectors of `users`; item_vecs: [I, d]; mask as CSR arrays over all users.
    """
    scores = user_vecs @ item_vecs.T  # [B, I]
    starts, ends = mask_indptr[users], mask_indptr[users + 1]
    lens = ends - starts
    if int(lens.sum()) > 0:
        rows = torch.repeat_interleave(torch.arange(len(users), device=scores.device), lens)
        offs = torch.arange(int(lens.sum()), device=scores.device) - torch.repeat_interleave(
            torch.cumsum(lens, 0) - lens, lens)
        cols = mask_indices[torch.repeat_interleave(starts, lens) + offs]
        scores[rows, cols] = float("-inf")
    return torch.topk(scores, min(k, scores.shape[1]), dim=1)


@torch.no_grad()
def rank_metrics(user_vecs: torch.Tensor, item_vecs: torch.Tensor, truth: sp.csr_matrix,
                 mask: sp.csr_matrix, ks=(20, 50), batch_users: int | None = None,
                 part: tuple[int, int] = (0, 1)) -> dict[str, float]:
    """Mean Recall@K and NDCG@K (module docstring) over users with held-out items.

    user_vecs [U, d], item_vecs [I, d]: the final representations; truth, mask: [U, I] CSR.
    part = (rank, world): evaluate only every world-th of those users, from rank (distributed
    evaluation; the caller sums mean * users over ranks).
    Returns {"recall@K": ..., "ndcg@K": ..., "users": n_evaluated}.
    """
    dev = item_vecs.device
    n_users, n_items = truth.shape
    ks = sorted(set(int(k) for k in ks))
    kmax = min(max(ks), n_items)
    n_true = np.diff(truth.indptr)
    eval_users = np.flatnonzero(n_true > 0)[part[0]::part[1]]
    if len(eval_users) == 0:
        return {**{f"recall@{k}": float("nan") for k in ks},
                **{f"ndcg@{k}": float("nan") for k in ks}, "users": 0}
    if batch_users is None:
        batch_users = max(1, min(4096, (1 << 25) // max(1, n_items)))
    truth_keys = torch.from_numpy(_keys(truth, n_items)).to(dev)
    m_indptr = torch.from_numpy(mask.indptr.astype(np.int64)).to(dev)
    m_indices = torch.from_numpy(mask.indices.astype(np.int64)).to(dev)
    discount = 1.0 / torch.log2(torch.arange(2, kmax + 2, device=dev, dtype=torch.float64))
    ideal_cum = torch.cumsum(discount, 0)  # IDCG for min(K, |T|) = n ones
    sums = {f"{m}@{k}": 0.0 for m in ("recall", "ndcg") for k in ks}
    for start in range(0, len(eval_users), batch_users):
        users = torch.from_numpy(eval_users[start:start + batch_users]).to(dev)
        vals, idx = topk_masked(user_vecs[users], item_vecs, users, m_indptr, m_indices, kmax)
        keys = users.unsqueeze(1) * n_items + idx  # [B, kmax]
        pos = torch.searchsorted(truth_keys, keys).clamp_(max=truth_keys.numel() - 1)
        hit = (truth_keys[pos] == keys) & torch.isfinite(vals)  # [B, kmax]
        nt = torch.from_numpy(n_true[eval_users[start:start + batch_users]]).to(dev)
        hitf = hit.double()
        gains = hitf * discount  # [B, kmax]
        for k in ks:
            kk = min(k, kmax)
            sums[f"recall@{k}"] += float((hitf[:, :kk].sum(1) / nt).sum())
            idcg = ideal_cum[(torch.clamp(nt, max=kk) - 1)]
            sums[f"ndcg@{k}"] += float((gains[:, :kk].sum(1) / idcg).sum())
    n = len(eval_users)
    out = {key: v / n for key, v in sums.items()}
    out["users"] = n
    return out
