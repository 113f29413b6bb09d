"""Atomic outputs: write to a temporary sibling, rename on success.

A killed job never leaves something that looks complete: the final path appears only after the
writer finished, and a failed writer removes its temporary sibling.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextlib.contextmanager
def atomic_output(final: str | os.PathLike):
    """Yield a temporary sibling path of `final`; on success it replaces `final`.

    Works for files and directory stores (OME-Zarr). On any exception the temporary path is
    removed and `final` is left as it was.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    # a killed earlier writer of this output leaves its sibling behind; one writer per output
    # at a time (the workflow guarantees it), so any such sibling is stale
    for stale in final.parent.glob(f".{final.name}.tmp-*"):
        with contextlib.suppress(OSError):
            _remove(stale)
    tmp = final.with_name(f".{final.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
    except BaseException:
        with contextlib.suppress(OSError):
            _remove(tmp)
        raise
    if final.exists() or final.is_symlink():
        _remove(final)
    os.replace(tmp, final)
