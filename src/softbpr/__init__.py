"""softbpr: graph recommenders trained with dynamic hard negatives and the soft BPR loss (SDNS)."""

__version__ = "0.1.0"

from .config import ConfigError, Experiment, load as load_config, with_updates  # noqa: E402
from .data import DataError, IdMap, Interactions  # noqa: E402
from .recommend import Recommendation, Recommender, load  # noqa: E402
from .split import Split, load_split  # noqa: E402
from .trainer import Run, TrainingDiverged, fit  # noqa: E402



def train(experiment: Experiment, out_dir=None, **kwargs) -> Run:
    """Train from Python with the config objects the CLI builds: `softbpr.train(exp, "runs/x")`.

    The same as `fit(experiment, out_dir=out_dir, **kwargs)` (the training loop lives in
    `softbpr.trainer`); kwargs: split, log, progress, on_epoch, resume.
    """
    return fit(experiment, out_dir=out_dir, **kwargs)


__all__ = ["__version__", "ConfigError", "DataError", "Experiment", "IdMap", "Interactions",
           "Recommendation", "Recommender", "Run", "Split", "TrainingDiverged", "fit", "load",
           "load_config", "load_split", "train", "with_updates"]
