"""Running a stage as a workflow job: logging to the job's log file, one-line input errors.

Used by the thin scripts in `scripts/`; knows nothing about Snakemake itself.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time

from .errors import InputError

log = logging.getLogger("microdiff")


@contextlib.contextmanager
def job(log_path: str | None, name: str):
    """Send logging and stderr (tqdm progress) to `log_path`; turn InputError into one line.

    A failing job prints `microdiff <name>: error: <file>: <problem>` to the terminal and the
    log and exits 1; the stage's atomic writes leave no partial output behind.
    """
    terminal = sys.stderr
    fh = open(log_path, "w", buffering=1) if log_path else None  # noqa: SIM115
    if fh:
        sys.stderr = fh
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        force=True,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    start = time.perf_counter()
    log.info("%s: start", name)
    try:
        yield log
        log.info("%s: done in %.1f s", name, time.perf_counter() - start)
    except InputError as err:
        msg = f"microdiff {name}: error: {err}"
        log.error(msg)
        print(msg, file=terminal)
        raise SystemExit(1) from None
    finally:
        if fh:
            sys.stderr = terminal
            fh.close()
