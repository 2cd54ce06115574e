"""Self-describing checkpoints (model.pt) and the embeddings file, written atomically.

A checkpoint (`model.pt`) holds everything needed to rebuild the model and its data view without
the original command: the resolved experiment config, the weights, the external id maps and the
train/valid/test pairs (so `softbpr evaluate` and `recommend` need no data files).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ._version import __version__
from .config import Experiment
from .data import DataError, IdMap
from .models import MF, build_model
from .rundir import RunDir, atomic_write
from .split import Pairs, Split

FORMAT = "softbpr-checkpoint/1"


def _ids(m: IdMap):
    return torch.from_numpy(m.ids) if m.ids.dtype.kind == "i" else [str(x) for x in m.ids]


def _idmap(x) -> IdMap:
    return IdMap(x.numpy() if isinstance(x, torch.Tensor) else np.array(x, dtype=str))


def _pairs(p: Pairs) -> torch.Tensor:
    return torch.from_numpy(np.stack([p.users, p.items]).astype(np.int32))


def save_checkpoint(path: Path, exp: Experiment, model: MF, split: Split, epoch: int,
                    metrics: dict | None = None) -> None:
    state = {
        "format": FORMAT,
        "softbpr_version": __version__,
        "experiment": exp.to_dict(),
        "epoch": epoch,
        "metrics": metrics or {},
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "dataset": split.name,
        "user_ids": _ids(split.user_map),
        "item_ids": _ids(split.item_map),
        "train": _pairs(split.train),
        "valid": _pairs(split.valid),
        "test": _pairs(split.test),
    }
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu"):
    """-> (Experiment, model on `device` in eval mode, Split without truth, raw dict)."""
    path = Path(path)
    if path.is_dir():
        path = RunDir(path).model_path
        if not path.exists():
            raise FileNotFoundError(f"{path}: no checkpoint in this run directory (the run has "
                                    "not evaluated an epoch yet, or it is not a run); resume or "
                                    "finish the run first")
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such run directory or checkpoint; give the folder "
                                "of a `softbpr train` run")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except (PermissionError, IsADirectoryError):
        raise
    except Exception as e:  # noqa: BLE001 - any unpickling failure: not a (whole) checkpoint
        why = "the file is empty" if path.stat().st_size == 0 else \
            f"truncated or corrupt: {type(e).__name__}"
        raise DataError(f"{path}: not a readable softbpr checkpoint ({why}); give a run "
                        "directory of `softbpr train` (or its model.pt), or retrain it") from None
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        what = ck.get("format") if isinstance(ck, dict) else type(ck).__name__
        raise DataError(f"{path}: not a softbpr checkpoint (format {what!r}); give a run "
                        "directory of `softbpr train` (or its model.pt)")
    try:
        exp = Experiment.from_dict(ck["experiment"])
        umap, imap = _idmap(ck["user_ids"]), _idmap(ck["item_ids"])
        pairs = {k: Pairs(ck[k][0].long().numpy(), ck[k][1].long().numpy())
                 for k in ("train", "valid", "test")}
        split = Split(ck["dataset"], pairs["train"], pairs["valid"], pairs["test"], umap, imap)
        m = exp.model
        model = build_model(m.name, len(umap), len(imap), m.dim, m.layers, m.init,
                            **m.options())
        model.load_state_dict(ck["state_dict"])
    except (KeyError, IndexError, TypeError, RuntimeError, ValueError) as e:
        raise DataError(f"{path}: a damaged or incompatible softbpr checkpoint ({type(e).__name__}: "
                        f"{str(e).splitlines()[0][:120] if str(e) else ''}); retrain the run"
                        ) from None
    model.to(device).eval()
    return exp, model, split, ck


def write_embeddings(path: Path, split: Split, user_vecs: torch.Tensor,
                     item_vecs: torch.Tensor) -> None:
    """embeddings.npz: user_ids, item_ids (external), user_embeddings, item_embeddings."""
    def w(tmp):
        with open(tmp, "wb") as fh:
            np.savez(fh, user_ids=split.user_map.ids, item_ids=split.item_map.ids,
                     user_embeddings=user_vecs.detach().cpu().numpy(),
                     item_embeddings=item_vecs.detach().cpu().numpy())
    atomic_write(path, w)
