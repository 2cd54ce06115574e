"""The built-in default dataset: seeded synthetic implicit feedback with planted preferences.

Generative story (all draws from one `numpy.random.Generator(seed)`):
1. Taste clusters: `n_clusters` centres c_k ~ N(0, I_d). Each user u picks a cluster and gets
   p_u = c_k + 0.7 * N(0, I_d); each item likewise q_i = c_k + 0.7 * N(0, I_d).
2. Popularity: item i has a power-law weight w_i = (rank_i + 10)^(-pop_exponent) over a random
   ranking, so a few items are far more popular than the rest.
3. True affinity s_ui = <p_u, q_i> / sqrt(d) + pop_weight * log(w_i / mean w).
4. Planted preferences ("truth"): user u likes its n_u top items by s_ui + Gumbel noise, with
   n_u ~ LogNormal(log(mean_likes), 0.5) clipped to [min_likes, 4 * mean_likes].
5. Observations: each liked item is observed independently with probability `observe_prob`
   (at least `min_obs` per user), so most liked items stay unobserved: they are the *false
   negatives* a hard sampler may pick. A share `noise` of extra interactions are drawn from the
   popularity distribution among items the user does not like (clicks without preference).
6. Timestamps: each user is active over a random window; observed events are spread uniformly
   in it, with liked items whose affinity is higher coming slightly earlier (a mild drift, so a
   temporal split differs from a random one).

The truth matrix is kept on the `Split` so diagnostics can measure how often a sampler picks an
item the user truly likes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .data import IdMap, Interactions


@dataclass(frozen=True)
class SyntheticSpec:
    n_users: int = 3000
    n_items: int = 2000
    dim: int = 16
    n_clusters: int = 16
    mean_likes: float = 60.0
    min_likes: int = 20
    observe_prob: float = 0.35
    min_obs: int = 8
    noise: float = 0.05
    pop_exponent: float = 0.8
    pop_weight: float = 0.3
    drift: float = 0.3


# Built-in dataset names -> spec. `synthetic` is the default dataset of the CLI.
SYNTHETIC: dict[str, SyntheticSpec] = {
    "synthetic": SyntheticSpec(),
    "synthetic-small": SyntheticSpec(n_users=600, n_items=400, mean_likes=40, min_likes=10,
                                     n_clusters=8),
}


@dataclass(frozen=True)
class Synthetic:
    interactions: Interactions
    truth: sp.csr_matrix  # [n_users, n_items] planted preferences


def generate(spec: SyntheticSpec, seed: int = 0) -> Synthetic:
    rng = np.random.default_rng(seed)
    U, I, d = spec.n_users, spec.n_items, spec.dim
    centres = rng.standard_normal((spec.n_clusters, d))
    P = centres[rng.integers(spec.n_clusters, size=U)] + 0.7 * rng.standard_normal((U, d))
    Q = centres[rng.integers(spec.n_clusters, size=I)] + 0.7 * rng.standard_normal((I, d))
    w = (rng.permutation(I) + 10.0) ** (-spec.pop_exponent)
    logpop = np.log(w / w.mean())
    S = (P @ Q.T) / np.sqrt(d) + spec.pop_weight * logpop  # [U, I] true affinity
    noisy = S + rng.gumbel(size=S.shape)
    n_like = np.exp(rng.normal(np.log(spec.mean_likes), 0.5, size=U))
    n_like = np.clip(np.round(n_like), spec.min_likes, min(I // 2, 4 * spec.mean_likes))
    n_like = n_like.astype(np.int64)
    order = np.argsort(-noisy, axis=1)  # [U, I] items by noisy affinity
    likes = np.arange(I)[None, :] < n_like[:, None]  # in sorted position space
    liked_items = order[likes]
    liked_users = np.repeat(np.arange(U), n_like)
    truth = sp.csr_matrix((np.ones(len(liked_users), np.float32), (liked_users, liked_items)),
                          shape=(U, I))
    truth.sort_indices()

    # observe a subset of the liked items; the first `min_obs` of each user always
    pos_rank = np.arange(len(liked_users)) - np.repeat(np.cumsum(n_like) - n_like, n_like)
    obs = rng.random(len(liked_users)) < spec.observe_prob
    # also force `min_obs` liked items per user, chosen at random (not the favourites)
    shuffled = np.lexsort((rng.random(len(liked_users)), liked_users))
    obs[shuffled[pos_rank < spec.min_obs]] = True
    ou, oi = liked_users[obs], liked_items[obs]
    affinity_rank = pos_rank[obs] / n_like[ou]  # 0 = the user's favourite

    # noise: clicks on popular items the user does not like
    n_noise = int(spec.noise * len(ou))
    nu = rng.integers(U, size=n_noise)
    ni = rng.choice(I, size=n_noise, p=w / w.sum())
    keep = ~np.asarray(truth[nu, ni]).ravel().astype(bool)
    nu, ni = nu[keep], ni[keep]
    users = np.concatenate([ou, nu])
    items = np.concatenate([oi, ni])
    arank = np.concatenate([affinity_rank, rng.random(len(nu))])

    # timestamps (seconds): a per-user window, favourites slightly earlier
    day = 86400.0
    start = rng.uniform(0, 300 * day, size=U)
    length = rng.uniform(30 * day, 180 * day, size=U)
    frac = np.clip((1 - spec.drift) * rng.random(len(users)) + spec.drift * arank, 0, 1)
    times = np.round(start[users] + frac * length[users])

    order = np.lexsort((items, users))
    inter = Interactions(users[order], items[order], times[order],
                         IdMap(np.arange(U, dtype=np.int64)), IdMap(np.arange(I, dtype=np.int64)))
    return Synthetic(inter, truth)
