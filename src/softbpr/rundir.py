"""The run directory: the one module that knows its file names and how they are written.

A run directory (written by `softbpr.fit`, read by sweep, report, plots, recommend and the CLI):

    config.json      the resolved experiment (Experiment.to_dict()) + dataset_notes, device,
                     world_size; written first, so a folder with it is a run
    history.jsonl    one JSON row per finished epoch (appended as training goes)
    model.pt         the best weights so far, a self-describing checkpoint (checkpoint.py)
    state.pt         the full training state for --resume (rewritten every checkpoint_every)
    result.json      written last: best_epoch, valid, test, seconds, stop_reason, ...
    embeddings.npz   the final user/item vectors with their external ids
    failed.json      a sweep run that diverged (error, seconds)
    sweep.json       a sweep run's point, labels, point id and seed (what plots need beyond
                     config.json)

Every file except history.jsonl is written atomically (a temp file `.<name>.*.tmp` beside it,
then a rename), so a reader never sees half a file; a process killed mid-write leaves only the
temp file, which `clear_temp` removes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

CONFIG = "config.json"
HISTORY = "history.jsonl"
RESULT = "result.json"
MODEL = "model.pt"
STATE = "state.pt"
EMBEDDINGS = "embeddings.npz"
FAILED = "failed.json"
SWEEP = "sweep.json"

HEAVY = (STATE, MODEL, EMBEDDINGS)
"""The large files: a sweep removes them after a finished run unless asked to keep them
(reports and plots need only the JSON files)."""

TRAINING_STATE = (HISTORY, RESULT, MODEL, STATE, EMBEDDINGS, FAILED)
"""What a fresh run replaces: `create(..., overwrite=True)` removes these (config.json is
rewritten; other files, e.g. sweep.json, stay)."""

_SECTIONS = ("data", "model", "sampler", "loss", "train", "eval")


def _act_on(handler, signum: int, frame) -> None:
    """What the process would have done on `signum` with `handler` installed."""
    if callable(handler):
        handler(signum, frame)
    elif handler == signal.SIG_DFL:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


@contextlib.contextmanager
def _signals_deferred():
    """Hold SIGINT and SIGTERM back until the block ends, then act on them as before.

    Both unwind a command as an exception raised at whatever line is running; inside
    `atomic_write` that could fall between creating the temp file and removing it. While the
    block runs, a gate in place of their handlers only notes the signal; at its end the previous
    handlers are put back and called (a default SIGTERM is re-sent, so the process ends as it
    would have), so a Ctrl-C waits at most one file write. The gate is closed before the
    handlers go back: one left in place by a signal landing mid-restore acts as the old handler.
    (Signal masks would not do: a signal sent to the process goes to any thread that does not
    block it, e.g. one of torch's, and Python runs the handler in the main thread all the same.)
    Only the main thread can set handlers; elsewhere the block runs as is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    holding = [True]
    got: list = []
    previous: dict = {}

    def gate(signum, frame):
        if holding[0]:
            got.append((signum, frame))
        else:
            _act_on(previous[signum], signum, frame)

    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            handler = signal.getsignal(sig)
            if handler is not None:  # None: a handler not set from Python; left alone
                previous[sig] = handler
                signal.signal(sig, gate)
        yield
    finally:
        holding[0] = False
        try:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        finally:
            first: dict = {}
            for sig, frame in got:
                first.setdefault(sig, frame)  # each signal once
            for sig, frame in first.items():
                _act_on(previous[sig], sig, frame)


def atomic_write(path: str | Path, write: Callable[[str], Any]) -> None:
    """Call write(tmp_path), then rename over `path`: readers never see a half-written file,
    and a Ctrl-C or SIGTERM during the write leaves no temp file (it waits for the rename)."""
    path = Path(path)
    with _signals_deferred():
        try:
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        except OSError as e:  # name the file the user asked for, not the temp file
            raise type(e)(e.errno, e.strerror, str(path)) from None
        try:
            os.close(fd)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual file mode
            write(tmp)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise


def write_json(path: str | Path, obj) -> None:
    """`obj` as indented JSON, atomically."""
    def w(tmp):
        with open(tmp, "w") as fh:
            json.dump(obj, fh, indent=2)
            fh.write("\n")
    atomic_write(path, w)


def _read_json(path: Path) -> dict | None:
    """The JSON object in `path` (None when absent); a damaged one is a DataError naming it."""
    if not path.exists():
        return None
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:  # not UTF-8 or not JSON
        obj, why = None, str(e)
    else:
        why = "not a JSON object"
    if not isinstance(obj, dict):
        from .data import DataError

        raise DataError(f"{path}: damaged ({why}); restore it, or delete the run directory to "
                        "train it again")
    return obj


def default_name(exp, when: float | None = None) -> str:
    """`<data>-<model>-<method>-s<seed>-<YYYYmmdd-HHMMSS>`: the folder name `softbpr train`
    uses under runs/ when no --out is given (`when`: seconds since the epoch, default now)."""
    data = Path(exp.data.data).name or "data"
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(when))
    return f"{data}-{exp.model.name}-{exp.method}-s{exp.train.seed}-{stamp}"


class RunDir:
    """One run directory (it need not exist yet). Paths are properties; reads return None (or
    []) for a missing file; writes are atomic except `append_history`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __str__(self) -> str:
        return str(self.path)

    def __fspath__(self) -> str:
        return str(self.path)

    def __eq__(self, other) -> bool:
        return isinstance(other, RunDir) and self.path == other.path

    def __hash__(self) -> int:
        return hash(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    # -- file paths ---------------------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG

    @property
    def history_path(self) -> Path:
        return self.path / HISTORY

    @property
    def result_path(self) -> Path:
        return self.path / RESULT

    @property
    def model_path(self) -> Path:
        return self.path / MODEL

    @property
    def state_path(self) -> Path:
        return self.path / STATE

    @property
    def embeddings_path(self) -> Path:
        return self.path / EMBEDDINGS

    @property
    def failed_path(self) -> Path:
        return self.path / FAILED

    @property
    def sweep_path(self) -> Path:
        return self.path / SWEEP

    # -- state --------------------------------------------------------------------------------

    def exists(self) -> bool:
        return self.path.is_dir()

    def is_empty(self) -> bool:
        """True when the folder is missing or holds nothing."""
        return not self.exists() or not any(self.path.iterdir())

    def is_run(self) -> bool:
        """Has config.json: training started here."""
        return self.config_path.exists()

    def is_finished(self) -> bool:
        """Has result.json: training finished and the test metrics are written."""
        return self.result_path.exists()

    def is_failed(self) -> bool:
        return self.failed_path.exists()

    def has_state(self) -> bool:
        return self.state_path.exists()

    def status(self) -> str:
        """done (result.json) | failed (failed.json) | resumable (config.json + state.pt) |
        pending (anything else, including a missing folder)."""
        if self.is_finished():
            return "done"
        if self.is_failed():
            return "failed"
        if self.has_state() and self.is_run():
            return "resumable"
        return "pending"

    def check_new(self, overwrite: bool = False) -> None:
        """Raise FileExistsError unless the folder is missing or empty (or `overwrite`); a
        file at the path is refused even with `overwrite`."""
        if self.path.exists() and not self.path.is_dir():
            raise FileExistsError(f"{self.path} is a file, not a run folder (--out); choose "
                                  "another --out")
        if not overwrite and not self.is_empty():
            if self.is_run() and not self.is_finished():
                raise FileExistsError(f"{self.path} holds an unfinished run (--out); continue "
                                      f"it with `softbpr train --resume {self.path}`, or pass "
                                      "--overwrite (Python: overwrite=True) to start over")
            raise FileExistsError(f"{self.path} exists and is not empty (--out); choose another "
                                  "--out or pass --overwrite (Python: overwrite=True)")

    def create(self, config: dict, overwrite: bool = False) -> RunDir:
        """Start a run: mkdir, config.json and an empty history.jsonl.

        A non-empty folder is refused unless `overwrite`; then the old training state (history,
        result, model, state, embeddings, failed.json, temp files) is removed first, so nothing
        of an earlier run can be mistaken for this one's. Other files (sweep.json) stay.
        """
        self.check_new(overwrite)
        self.path.mkdir(parents=True, exist_ok=True)
        for f in TRAINING_STATE:
            (self.path / f).unlink(missing_ok=True)
        self.clear_temp()
        write_json(self.config_path, config)
        self.history_path.write_text("")
        return self

    def clear_temp(self) -> list[Path]:
        """Remove temp files left by a process killed mid-write (their targets are intact)."""
        gone = sorted(self.path.glob(".*.tmp")) if self.exists() else []
        for tmp in gone:
            tmp.unlink()
        return gone

    def remove_heavy(self, keep: Iterable[str] = ()) -> None:
        """Delete state.pt, model.pt and embeddings.npz, except the names in `keep`."""
        for f in HEAVY:
            if f not in keep:
                (self.path / f).unlink(missing_ok=True)

    # -- config -------------------------------------------------------------------------------

    def read_config(self) -> dict:
        if not self.is_run():
            raise FileNotFoundError(f"{self.config_path}: not a run directory (no {CONFIG})")
        try:
            return json.loads(self.config_path.read_text(encoding="utf-8"))
        except ValueError as e:  # not UTF-8 or not JSON (a torn or edited file)
            from .data import DataError

            raise DataError(f"{self.config_path}: not a readable run config ({e}); restore it, "
                            "or start a new run") from None

    def experiment(self):
        """The run's `Experiment`, rebuilt (and validated) from config.json."""
        from .config import ConfigError, Experiment
        from .data import DataError

        cfg = self.read_config()
        extra = (set(cfg) - set(_SECTIONS) - {"method", "dataset_notes", "device", "world_size"}
                 if isinstance(cfg, dict) else None)
        if extra is None or extra or not any(k in cfg for k in _SECTIONS):
            raise DataError(f"{self.config_path}: not a run config (a JSON object of the "
                            f"sections {', '.join(_SECTIONS)}"
                            + (f"; unknown keys {sorted(extra)}" if extra else "")
                            + "); restore it, or start a new run")
        try:
            return Experiment.from_dict({k: cfg[k] for k in _SECTIONS if k in cfg})
        except (ConfigError, TypeError) as e:
            raise DataError(f"{self.config_path}: {e}; restore it, or start a new run") from None

    # -- history ------------------------------------------------------------------------------

    def append_history(self, row: dict) -> None:
        """One epoch row; flushed at once, so a killed run keeps every finished epoch."""
        with open(self.history_path, "a") as fh:
            fh.write(json.dumps(row) + "\n")

    def read_history(self) -> list[dict]:
        """Every epoch row ([] when absent); a torn last line (killed mid-write) is skipped."""
        if not self.history_path.exists():
            return []
        lines = [x for x in self.history_path.read_text().splitlines() if x.strip()]
        rows = []
        for n, line in enumerate(lines):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                if n != len(lines) - 1:
                    raise ValueError(f"{self.history_path}: line {n + 1} is not JSON") from None
        return rows

    def n_epochs(self) -> int:
        """Number of history rows (0 when there is none)."""
        return len(self.read_history())

    def truncate_history(self, before_epoch: int) -> list[dict]:
        """Keep only the rows of epochs < before_epoch (a run killed after writing a row but
        before saving its state resumes from the state); returns the rows kept."""
        rows = [r for r in self.read_history() if r["epoch"] < before_epoch]
        atomic_write(self.history_path, lambda tmp: Path(tmp).write_text(
            "".join(json.dumps(r) + "\n" for r in rows)))
        return rows

    # -- result, failure, sweep info ----------------------------------------------------------

    def write_result(self, d: dict) -> None:
        write_json(self.result_path, d)

    def read_result(self) -> dict | None:
        return _read_json(self.result_path)

    def write_failed(self, d: dict) -> None:
        write_json(self.failed_path, d)

    def read_failed(self) -> dict | None:
        return _read_json(self.failed_path)

    def clear_failed(self) -> None:
        self.failed_path.unlink(missing_ok=True)

    def write_sweep_info(self, d: dict) -> None:
        write_json(self.sweep_path, d)

    def read_sweep_info(self) -> dict | None:
        return _read_json(self.sweep_path)

    # -- training state -----------------------------------------------------------------------

    def save_state(self, obj: dict) -> None:
        """state.pt (torch.save), atomically: a kill mid-write keeps the previous state."""
        import torch

        atomic_write(self.state_path, lambda tmp: torch.save(obj, tmp))

    def load_state(self) -> dict:
        """state.pt on the CPU. It holds RNG states and optimizer state (not only tensors), so
        it is loaded with weights_only=False: resume only runs you trust."""
        import torch

        if not self.has_state():
            raise FileNotFoundError(f"cannot resume: {self.state_path} does not exist")
        try:
            st = torch.load(self.state_path, map_location="cpu", weights_only=False)
        except (PermissionError, IsADirectoryError):
            raise
        except Exception as e:  # noqa: BLE001 - any unpickling failure: a damaged file
            st = e
        if not isinstance(st, dict) or "epoch" not in st:
            from .data import DataError

            why = f"truncated or corrupt: {type(st).__name__}" if isinstance(st, Exception) \
                else "not a training state"
            raise DataError(f"{self.state_path}: the saved training state is damaged ({why}); "
                            f"delete it to restart the run from epoch 1, or start a new run")
        return st


def find_runs(paths: str | Path | Iterable[str | Path]) -> list[RunDir]:
    """Every run directory (config.json + history.jsonl) at or under `paths` (a file stands for
    its folder), sorted per path, without duplicates."""
    found: list[Path] = []
    for p in ([paths] if isinstance(paths, (str, Path)) else paths):
        p = Path(p)
        if p.is_file():
            p = p.parent
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such folder")
        found += sorted(h.parent for h in p.rglob(HISTORY) if (h.parent / CONFIG).exists())
    return [RunDir(d) for d in dict.fromkeys(found)]


def run_of_row(folders: Iterable[str | Path], run: str) -> RunDir | None:
    """The run directory of a results.jsonl row's `run` (a path relative to its sweep folder,
    `runs/NAME`, or an older bare `NAME`) in the first of `folders` that has it; None if none."""
    for f in map(Path, folders):
        for p in (f / run, f / "runs" / run):
            if p.is_dir():
                return RunDir(p)
    return None


__all__ = [
    "CONFIG",
    "EMBEDDINGS",
    "FAILED",
    "HEAVY",
    "HISTORY",
    "MODEL",
    "RESULT",
    "STATE",
    "SWEEP",
    "RunDir",
    "atomic_write",
    "default_name",
    "find_runs",
    "run_of_row",
    "write_json",
]
