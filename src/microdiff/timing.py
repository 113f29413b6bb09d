"""Time spent in the network, per process: what the throughput benchmark sets the rest against.

Every network evaluation goes through `Denoiser.forward`, which runs under `NETWORK`; a job's log
ends with the network's wall and CPU seconds (`microdiff.jobs.job`), so `bench/experiment.py`
can tell the network's share of a job from the work around it, also when one job does many
stages. On a GPU the clock reads when the kernels were queued, not when they finished.
"""

from __future__ import annotations

import time


class Clock:
    """Wall and process CPU seconds spent inside `with clock:` blocks (nested blocks once)."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0
        self.calls = 0
        self._depth = 0

    def __enter__(self) -> Clock:
        if self._depth == 0:
            self._start = (time.perf_counter(), time.process_time())
        self._depth += 1
        return self

    def __exit__(self, *exc) -> None:
        self._depth -= 1
        if self._depth == 0:
            wall, cpu = self._start
            self.wall += time.perf_counter() - wall
            self.cpu += time.process_time() - cpu
            self.calls += 1


NETWORK = Clock()
