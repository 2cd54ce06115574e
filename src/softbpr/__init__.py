"""softbpr: graph recommenders trained with dynamic hard negatives and the soft BPR loss (SDNS)."""

__version__ = "0.1.0"

from .config import ConfigError, Experiment, load as load_config, with_updates  # noqa: E402
from .data import DataError, IdMap, Interactions  # noqa: E402
from .recommend import Recommendation, Recommender, load  # noqa: E402
from .split import Split, load_split  # noqa: E402
from .train import Run, TrainingDiverged, fit  # noqa: E402

# Training from Python is `fit(experiment, out_dir=...)`. There is deliberately no function
# `softbpr.train`: it would shadow the submodule, and `import softbpr.train as m` would then
# return the function (Python resolves that import through the package attribute).
__all__ = ["__version__", "ConfigError", "DataError", "Experiment", "IdMap", "Interactions",
           "Recommendation", "Recommender", "Run", "Split", "TrainingDiverged", "fit", "load",
           "load_config", "load_split", "with_updates"]
