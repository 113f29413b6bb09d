"""Rule report_runtime: wall time per rule from every benchmark file of the run."""

import time
from pathlib import Path

from microdiff.jobs import job
from microdiff.report import runtime_figure, runtime_table, save

START = time.perf_counter()

with job(snakemake.log[0], "report_runtime") as log:
    paths = sorted(Path("benchmarks").glob("*/*.tsv"))
    # this job has no benchmark file until it ends: its time so far, drawing included
    table = runtime_table(paths, {"report_runtime": time.perf_counter() - START})
    log.info("runtime per rule:\n%s", table.to_string(index=False))
    save(runtime_figure(table), snakemake.output[0])
