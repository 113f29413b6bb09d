"""Running a stage as a workflow job: logging to the job's log file, one-line input errors.

Used by the thin scripts in `scripts/`; knows nothing about Snakemake itself.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import sys
import time

from .errors import InputError

log = logging.getLogger("microdiff")
# The disk, not the program: full, read-only, no permission. One line naming the path is enough.
_ONE_LINE_OS_ERRORS = (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT)


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
    except OSError as err:
        if err.errno not in _ONE_LINE_OS_ERRORS:
            log.exception("%s: failed", name)
            raise
        where = f"{err.filename}: " if err.filename else ""
        msg = f"microdiff {name}: error: {where}{err.strerror}"
        log.error(msg)
        print(msg, file=terminal)
        raise SystemExit(1) from None
    except Exception:
        # not a known input error: the traceback goes to the job's log, not only the terminal
        log.exception("%s: failed", name)
        raise
    finally:
        if fh:
            sys.stderr = terminal
            fh.close()
