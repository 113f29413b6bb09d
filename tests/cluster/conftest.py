"""Fixtures for the cluster tests: one real single-node SLURM per test session.

The `slurm` fixture starts `LocalSlurm` (see `slurm.py`) once for the session and stops it at
the end. Where this machine cannot host it (not root, no apt-get, a SLURM already configured)
or it fails to come up, the tests are skipped with the reason, except in CI (`CI=true`), where
the cluster tests must run and any such failure fails them.

Nothing here is global: no hooks, no autouse fixtures, so other test directories are unaffected.
"""

from __future__ import annotations

import os

import pytest

from .slurm import LocalSlurm, SlurmStartError, SlurmUnavailable


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="session")
def slurm():
    harness = LocalSlurm()
    reason = None
    try:
        harness.start()
    except SlurmUnavailable as exc:
        reason = f"local SLURM cannot run here: {exc}"
    except SlurmStartError as exc:
        harness.stop()
        reason = f"local SLURM did not start: {exc}"
    except BaseException:
        harness.stop()
        raise
    if reason is not None:
        if _in_ci():
            pytest.fail(f"{reason}\n(CI=true: the cluster tests must run in CI)", pytrace=False)
        pytest.skip(reason)
    timings = ", ".join(f"{k} {v:.2f} s" for k, v in harness.timings.items())
    print(f"\nlocal SLURM up: {timings}")
    try:
        yield harness
    finally:
        harness.stop()
