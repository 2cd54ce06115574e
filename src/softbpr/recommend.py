"""Using a trained model: top-K recommendations, pair scores and embedding export.

    rec = softbpr.load_recommender("runs/my-run")     # checkpoint -> propagate once -> Recommender
    rec.recommend(["u_a", 42], k=10)                   # -> [Recommendation(user, items, scores)]
    rec.score(["u_a"], ["i_1", "i_2"])                 # -> float32 [1, 2]
    rec.export("emb.npz")                              # or "emb.parquet" (needs pyarrow)

Everything takes and returns EXTERNAL ids (the ids of the data file); internal indices stay
inside. Scores are dot products of the pooled final representations, the same scores that
evaluation ranks by, and the top-K goes through `evaluate.topk_masked`, the evaluation path.
"Seen" items are a user's TRAIN pairs; valid/test pairs of the run are not excluded (they were
held out of training). A user is known when it has at least one train pair; any other user
(absent from the data, or present only in valid/test) has no trained preference and is refused,
or with `fallback="popular"` gets the items with the most train interactions.
This module imports no training code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from .checkpoint import load_checkpoint, write_embeddings
from .data import IdMap
from .evaluate import ranking_vectors, topk_masked
from .graph import InteractionGraph
from .rundir import atomic_write
from .seeding import pick_device
from .split import Split

FALLBACKS = ("popular",)


@dataclass(frozen=True, eq=False)
class Recommendation:
    """Top-K list of one user, best first.

    user: the user's external id (as stored in the run; as given when the user is unknown).
    items: external item ids [n], n <= k (fewer when fewer unseen items exist).
    scores: float32 [n]; model scores <user, item>, or, when source == "popular", the items'
        train interaction counts.
    source: "model", or "popular" for an unknown user served by the popularity fallback.
    """

    user: int | str
    items: np.ndarray
    scores: np.ndarray
    source: str = "model"

    def to_dict(self) -> dict:
        """JSON-ready: {"user", "source", "items": [...], "scores": [...]} with Python scalars."""
        return {"user": _py(self.user), "source": self.source, "items": self.items.tolist(),
                "scores": [float(str(s)) for s in self.scores]}  # shortest float32 repr


def _py(x):
    return x.item() if isinstance(x, np.generic) else x


def _as_list(ids) -> list:
    """A single external id (str/int) or an iterable of ids -> list."""
    if isinstance(ids, (str, bytes, int, np.integer, np.str_)):
        return [ids]
    if isinstance(ids, np.ndarray) and ids.ndim == 0:
        return [ids.item()]
    return list(ids)


def _csr_tensors(m: sp.csr_matrix, device) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.from_numpy(m.indptr.astype(np.int64)).to(device),
            torch.from_numpy(m.indices.astype(np.int64)).to(device))


class Recommender:
    """Final user/item representations of a trained model plus the train pairs, on one device.

    Build with `load_recommender(run_dir)` / `Recommender.from_checkpoint(run_dir)` or, right after
    training, `Recommender.from_run(run)`. The model is propagated once; only the pooled
    matrices (users [U, d], items [I, d]) and the train pairs (for `exclude_seen`) are kept.
    """

    def __init__(self, user_vecs: torch.Tensor, item_vecs: torch.Tensor, split: Split,
                 train_csr: sp.csr_matrix | None = None, rank_by: str = "dot"):
        n_u, n_i = split.n_users, split.n_items
        if user_vecs.shape[0] != n_u or item_vecs.shape[0] != n_i:
            raise ValueError(f"embeddings {tuple(user_vecs.shape)} / {tuple(item_vecs.shape)} "
                             f"do not match {n_u} users / {n_i} items")
        dev = item_vecs.device
        user_vecs, item_vecs = ranking_vectors(user_vecs, item_vecs, rank_by)  # cosine: unit rows
        self.split, self.rank_by = split, rank_by
        self._user = user_vecs.detach().float().to(dev)  # [U, d]
        self._item = item_vecs.detach().float()  # [I, d]
        seen = train_csr if train_csr is not None else split.train.csr(n_u, n_i)
        self._seen_ptr, self._seen_idx = _csr_tensors(seen, dev)
        self._none_ptr = torch.zeros(n_u + 1, dtype=torch.int64, device=dev)
        self._none_idx = torch.zeros(0, dtype=torch.int64, device=dev)
        self._train_degree = np.diff(seen.indptr)  # [U]
        self.popularity = np.asarray(seen.sum(0)).ravel().astype(np.int64)  # [I] train counts
        self._popular = np.argsort(-self.popularity, kind="stable")  # ties: lower index first
        # about 2^25 scores per batch, as in evaluation (128 MiB of float32)
        self.batch_users = max(1, min(4096, (1 << 25) // max(1, n_i)))
        self.index = None  # an ann.AnnIndex after use_index(): approximate top-K

    def use_index(self, kind: str | None = "ivf", **params):
        """Serve `recommend`/`topk` from an approximate Faiss inner-product index (softbpr.ann:
        kind 'ivf', 'hnsw' or 'flat'; params as in `ann.build_index`), or exact scoring again
        with kind=None (the default path). Seen items are still excluded exactly. Returns the
        index (None for exact)."""
        if kind is None or kind == "exact":
            self.index = None
        else:
            from .ann import build_index

            self.index = build_index(self.item_embeddings, kind, **params)
        return self.index

    # -- construction -------------------------------------------------------------------------

    @classmethod
    @torch.no_grad()
    def from_checkpoint(cls, run_dir: str | Path, device: str | torch.device = "auto"
                        ) -> Recommender:
        """Load `run_dir/model.pt` (or a checkpoint file) and propagate once on `device`."""
        dev = pick_device(device) if isinstance(device, str) else torch.device(device)
        exp, model, split, _ = load_checkpoint(run_dir, dev)
        graph = InteractionGraph.from_pairs(split.train, split.n_users, split.n_items, dev)
        emb = model.propagate(graph)
        return cls(emb.user.clone(), emb.item.clone(), split, graph.train_csr, exp.eval.rank_by)

    @classmethod
    @torch.no_grad()
    def from_run(cls, run) -> Recommender:
        """From a `softbpr.Run` (the result of `fit`), without reading the disk.

        The vectors are copied: training the run's model further does not change them.
        """
        was_training = run.model.training
        run.model.eval()
        emb = run.model.propagate(run.graph)
        run.model.train(was_training)
        return cls(emb.user.clone(), emb.item.clone(), run.split, run.graph.train_csr,
                   run.experiment.eval.rank_by)

    # -- ids and vectors ----------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return self._item.device

    @property
    def user_map(self) -> IdMap:
        return self.split.user_map

    @property
    def item_map(self) -> IdMap:
        return self.split.item_map

    @property
    def user_ids(self) -> np.ndarray:
        """External user ids [U] (int64, or str); row u of `user_embeddings` is user_ids[u]."""
        return self.split.user_map.ids

    @property
    def item_ids(self) -> np.ndarray:
        """External item ids [I] (int64, or str); row i of `item_embeddings` is item_ids[i]."""
        return self.split.item_map.ids

    @property
    def user_embeddings(self) -> np.ndarray:
        """Pooled final user representations, float32 [U, d] (read-only)."""
        return _readonly(self._user)

    @property
    def item_embeddings(self) -> np.ndarray:
        """Pooled final item representations, float32 [I, d] (read-only)."""
        return _readonly(self._item)

    def has_user(self, user) -> bool:
        """Whether `user` (external id) has train pairs, i.e. a trained preference."""
        return self._user_index(user) is not None

    def seen(self, user) -> np.ndarray:
        """External ids of `user`'s train items (what `exclude_seen` leaves out); [] if unknown."""
        u = self._user_index(user)
        if u is None:
            return self.item_ids[:0]
        ptr = self._seen_ptr[u:u + 2].tolist()
        return self.item_ids[self._seen_idx[ptr[0]:ptr[1]].cpu().numpy()]

    def _user_index(self, user) -> int | None:
        try:
            u = int(self.user_map.to_internal([user])[0])
        except KeyError:
            return None
        return u if self._train_degree[u] > 0 else None

    def _internal(self, ids: list, m: IdMap, what: str) -> np.ndarray:
        try:
            return m.to_internal(ids)
        except KeyError as e:
            raise KeyError(f"{what} {e.args[0].removeprefix('unknown ')} is not in this run's "
                           "data") from None

    # -- scoring ------------------------------------------------------------------------------

    @torch.no_grad()
    def score(self, users, items) -> np.ndarray:
        """Scores of every (user, item) pair: float32 [len(users), len(items)].

        out[a, b] = <user_embeddings[users[a]], item_embeddings[items[b]]>, the ranking score.
        Unknown ids raise KeyError naming the first one.
        """
        u = self._internal(_as_list(users), self.user_map, "user")
        i = self._internal(_as_list(items), self.item_map, "item")
        uu = torch.from_numpy(u).to(self.device)
        ii = torch.from_numpy(i).to(self.device)
        return (self._user[uu] @ self._item[ii].T).cpu().numpy()  # [len(users), len(items)]

    @torch.no_grad()
    def recommend(self, users, k: int = 10, exclude_seen: bool = True,
                  fallback: str | None = None) -> list[Recommendation]:
        """Top-`k` items for each of `users` (external ids; one id or a list), in input order.

        exclude_seen: leave out the user's train items (the list may then hold fewer than k).
        fallback: None -> an unknown user (see `has_user`) raises KeyError; "popular" -> it gets
            the k items with the most train interactions (source "popular").
        Returns one `Recommendation` per input user, duplicates included.
        """
        if int(k) < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if fallback is not None and fallback not in FALLBACKS:
            raise ValueError(f"unknown fallback {fallback!r}; choose {', '.join(FALLBACKS)}")
        users = _as_list(users)
        idx = [self._user_index(x) for x in users]
        unknown = [x for x, i in zip(users, idx) if i is None]
        if unknown and fallback is None:
            raise KeyError(f"unknown user {unknown[0]!r} (no train interactions in this run; "
                           f"{len(unknown)} unknown of {len(users)})")
        known = np.array([i for i in idx if i is not None], dtype=np.int64)
        vals, items = self.topk(known, int(k), exclude_seen)
        popular = self._popular[:int(k)]
        out, row = [], 0
        for x, i in zip(users, idx):
            if i is None:
                out.append(Recommendation(x, self.item_ids[popular],
                                          self.popularity[popular].astype(np.float32), "popular"))
                continue
            ok = np.isfinite(vals[row])  # -inf = masked (seen) item
            out.append(Recommendation(_py(self.user_ids[i]), self.item_ids[items[row][ok]],
                                      vals[row][ok]))
            row += 1
        return out

    @torch.no_grad()
    def topk(self, users: np.ndarray, k: int, exclude_seen: bool = True
             ) -> tuple[np.ndarray, np.ndarray]:
        """Internal-index top-k: users int64 [n] -> (scores float32 [n, k'], items int64 [n, k']).

        k' = min(k, I). Masked (seen) items score -inf and sort last. Users are scored in
        batches of `batch_users` through `evaluate.topk_masked`, exactly as in evaluation.
        """
        k = min(k, len(self.item_ids))
        ptr, ind = ((self._seen_ptr, self._seen_idx) if exclude_seen
                    else (self._none_ptr, self._none_idx))
        if self.index is not None:  # approximate: softbpr.ann, over-fetch then filter
            from .ann import topk_unseen

            users = np.asarray(users, dtype=np.int64)
            return topk_unseen(self.index, self.user_embeddings[users], ptr.cpu().numpy(),
                               ind.cpu().numpy(), users, k)
        vals = np.empty((len(users), k), dtype=np.float32)
        items = np.empty((len(users), k), dtype=np.int64)
        buf = None  # one score block reused by every batch (as evaluation does)
        if len(users) > self.batch_users:
            buf = self._item.new_empty(self.batch_users, self._item.shape[0])
        for s in range(0, len(users), self.batch_users):
            u = torch.from_numpy(np.ascontiguousarray(users[s:s + self.batch_users])).to(
                self.device)
            v, i = topk_masked(self._user[u], self._item, u, ptr, ind, k, out=buf)  # [B, k]
            vals[s:s + len(u)] = v.cpu().numpy()
            items[s:s + len(u)] = i.cpu().numpy()
        return vals, items

    # -- export -------------------------------------------------------------------------------

    def export(self, path: str | Path) -> list[Path]:
        """Write the embeddings with their external ids; returns the files written.

        `*.npz`: one file with arrays user_ids [U], item_ids [I], user_embeddings [U, d],
            item_embeddings [I, d] (the format of a run's embeddings.npz).
        `*.parquet`: two files, `<stem>.users.parquet` and `<stem>.items.parquet`, each with
            columns `id` (int64 or string) and `embedding` (fixed-size list of d float32).
            Needs pyarrow (`pip install softbpr[parquet]`).
        """
        path = Path(path)
        if path.suffix == ".npz":
            write_embeddings(path, self.split, self._user, self._item)
            return [path]
        if path.suffix == ".parquet":
            return write_parquet(path, self.user_ids, self.user_embeddings, self.item_ids,
                                 self.item_embeddings)
        raise ValueError(f"{path}: unknown export format {path.suffix or '(none)'!r}; "
                         "use a .npz or .parquet file name")


def _readonly(t: torch.Tensor) -> np.ndarray:
    a = t.cpu().numpy()  # on CPU a view of the tensor: block writes that would change it
    a = a.view()
    a.flags.writeable = False
    return a


def write_parquet(path: Path, user_ids: np.ndarray, user_vecs: np.ndarray, item_ids: np.ndarray,
                  item_vecs: np.ndarray) -> list[Path]:
    """`<stem>.users.parquet` and `<stem>.items.parquet` beside `path` (see Recommender.export)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ModuleNotFoundError:
        raise ModuleNotFoundError("writing .parquet needs pyarrow: pip install 'softbpr[parquet]' "
                                  "(or pyarrow); .npz needs nothing extra") from None
    path = Path(path)
    stem = path.name[:-len(".parquet")]
    out = []
    for what, ids, vecs in (("users", user_ids, user_vecs), ("items", item_ids, item_vecs)):
        d = vecs.shape[1]
        emb = pa.FixedSizeListArray.from_arrays(
            pa.array(np.ascontiguousarray(vecs, dtype=np.float32).reshape(-1)), d)
        id_col = pa.array(ids.astype(np.int64) if ids.dtype.kind == "i" else ids.astype(str))
        table = pa.table({"id": id_col, "embedding": emb},
                         metadata={"softbpr.entity": what[:-1], "softbpr.dim": str(d)})
        target = path.with_name(f"{stem}.{what}.parquet")
        atomic_write(target, lambda tmp, t=table: pq.write_table(t, tmp))
        out.append(target)
    return out


def load_recommender(run_dir: str | Path, device: str | torch.device = "auto",
                     index: str | None = None) -> Recommender:
    """`Recommender` of a run directory (or its model.pt file): the Python face of `recommend`.

    index: None or 'exact' (score every item, the default), 'faiss' (= 'ivf'), 'ivf', 'hnsw' or
    'flat': an approximate Faiss index for large catalogues (`Recommender.use_index`).
    """
    rec = Recommender.from_checkpoint(run_dir, device)
    if index not in (None, "exact"):
        rec.use_index("ivf" if index == "faiss" else index)
    return rec


__all__ = ["Recommendation", "Recommender", "load_recommender", "write_parquet"]
