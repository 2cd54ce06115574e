"""Progress lines with an ETA for long loops, for logs that are not a terminal.

On a terminal the trainer shows a tqdm bar per epoch; in a batch job (Slurm, nohup, a sweep's
subprocess) that bar is off and a 4-hour epoch or a 10-minute evaluation would print nothing
until it ends. `ProgressLog` prints one line every `every` seconds instead:

    epoch 3: 1,200 / 3,827 batches (31%), 4,810 s, ETA 10,530 s
    evaluate valid: 420,000 / 1,000,000 users (42%), 268 s, ETA 370 s

A loop shorter than `every` prints nothing. The ETA assumes the remaining steps cost what the
done ones did on average.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class ProgressLog:
    """Call `update(done)` after each step; a line goes to `log` at most every `every` s."""

    def __init__(self, total: int, what: str, log: Callable[[str], None] = print,
                 every: float = 30.0, unit: str = "", clock: Callable[[], float] = time.monotonic):
        self.total, self.what, self.log, self.every, self.unit = total, what, log, every, unit
        self.clock = clock
        self.start = self.last = clock()
        self.lines = 0

    def update(self, done: int) -> None:
        now = self.clock()
        if now - self.last < self.every or done <= 0 or done >= self.total:
            return
        self.last = now
        elapsed = now - self.start
        eta = elapsed / done * (self.total - done)
        unit = f" {self.unit}" if self.unit else ""
        self.log(f"{self.what}: {done:,} / {self.total:,}{unit} ({done / self.total:.0%}), "
                 f"{elapsed:,.0f} s, ETA {eta:,.0f} s")
        self.lines += 1

    __call__ = update


__all__ = ["ProgressLog"]
