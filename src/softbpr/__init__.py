"""softbpr: graph recommenders trained with dynamic hard negatives and the soft BPR loss (SDNS)."""

from ._version import __version__
from .config import ConfigError, Experiment, with_updates
from .config import load as load_config
from .data import DataError, IdMap, Interactions
from .recommend import Recommendation, Recommender, load_recommender
from .split import Split, load_split
from .trainer import Run, TrainingDiverged, fit


def train(experiment: Experiment, out_dir=None, **kwargs) -> Run:
    """Train from Python with the config objects the CLI builds: `softbpr.train(exp, "runs/x")`.

    The same as `fit(experiment, out_dir=out_dir, **kwargs)` (the training loop lives in
    `softbpr.trainer`); kwargs: split, log, progress, on_epoch, resume, overwrite (a non-empty
    out_dir is refused without it).
    """
    return fit(experiment, out_dir=out_dir, **kwargs)


__all__ = [
    "ConfigError",
    "DataError",
    "Experiment",
    "IdMap",
    "Interactions",
    "Recommendation",
    "Recommender",
    "Run",
    "Split",
    "TrainingDiverged",
    "__version__",
    "fit",
    "load_config",
    "load_recommender",
    "load_split",
    "train",
    "with_updates",
]
