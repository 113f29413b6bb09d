"""Running a stage as a workflow job: logging to the job's log file, one-line input errors.

Used by the thin scripts in `scripts/`; knows nothing about Snakemake itself.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace

from .errors import InputError
from .timing import NETWORK

log = logging.getLogger("microdiff")

# glibc malloc options (mallopt's parameter numbers) for a job's many large temporary arrays
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 << 20  # glibc's own upper bound for its adaptive threshold
TRIM_THRESHOLD = 128 << 20
# The disk, not the program: full, read-only, no permission. One line naming the path is enough.
_ONE_LINE_OS_ERRORS = (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT)


def keep_freed_memory() -> bool:
    """Let glibc malloc reuse the memory a job frees instead of giving it back to the system.

    A stage allocates and frees arrays of 0.1-30 MB per sample (tiles, label blocks, texture
    counts, the network's activations). By default glibc hands each such block back (munmap, or
    trimming the heap) and maps it anew for the next one, whose every 4 KiB page then faults
    and is zeroed by the kernel: about 14,000 page faults per 520 x 696 sample in `features`,
    a sixth of its CPU time, and a sixth of the restore network's (issue 15). With blocks up
    to 32 MB from the heap and up to 128 MB of freed heap kept, later arrays reuse those pages;
    larger arrays are mapped as before. Values computed are unchanged; the peak resident
    memory of a job can grow by up to the trim threshold. False (nothing done) where the C
    library is not glibc."""
    import ctypes
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # the mmap threshold first: setting it fixes it (no adaptive threshold, which would
    # otherwise also move the trim threshold)
    done = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    return mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and done


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
    keep_freed_memory()
    log.info("%s: start", name)
    try:
        yield log
        if NETWORK.calls:
            log.info("%s: network %.1f s wall, %.1f s CPU", name, NETWORK.wall, NETWORK.cpu)
        log.info("%s: done in %.1f s, %.1f s CPU in this process", name,
                 time.perf_counter() - start, time.process_time())  # fmt: skip
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


@dataclass
class Member:
    """One sample of a job: its input and output paths and params (attribute access)."""

    sample: str
    input: object
    output: object
    params: object


def members(smk) -> list[Member]:
    """The samples a workflow job processes: its `members` param (a batch rule: one entry per
    sample, from common.smk's per_sample), else the one sample of its wildcards."""
    rows = smk.params.get("members") if hasattr(smk.params, "get") else None
    if rows is None:
        return [Member(smk.wildcards.sample, smk.input, smk.output, smk.params)]
    shared = {k: v for k, v in smk.params.items() if k != "members"}
    return [
        Member(
            row["sample"],
            SimpleNamespace(**row["input"]),
            SimpleNamespace(**row["output"]),
            SimpleNamespace(**shared, **row["params"]),
        )
        for row in rows
    ]


def each(smk, log) -> Iterator[Member]:
    """`members(smk)`, logging which sample of how many is being done (a batch's progress)."""
    todo = members(smk)
    for i, m in enumerate(todo):
        if len(todo) > 1:
            log.info("%s (%d of %d)", m.sample, i + 1, len(todo))
        yield m
