"""Compare what two runs of the workflow wrote: the same outputs, timestamps aside?

    python tools/compare_runs.py BEFORE_WORKDIR AFTER_WORKDIR

Used to show that a refactor changed no output (issue 18): run `make demo` in a checkout of the
commit before and in one of the commit after (same shipped models), then compare the two
working directories. The comparison is the one the workflow tests use for local vs SLURM and
killed-and-resumed runs (`tests/cluster/outputs.py`: zarr chunks and binaries byte for byte,
JSON and zarr metadata without `created`, parquet tables exactly, figures by pixels). Prints one
line per differing file and a summary; exits 1 when any output differs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.cluster.outputs import compare_runs, output_files  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", type=Path, help="working directory of the first run")
    ap.add_argument("after", type=Path, help="working directory of the second run")
    a = ap.parse_args(argv)
    problems = compare_runs(a.before, a.after)
    for line in problems:
        print("DIFFERS", line)
    n = len(output_files(a.after))
    print(f"{n} output files compared: {len(problems)} differ")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
