"""Rule report_runtime: wall time per rule from every benchmark file of the run."""

from pathlib import Path

from microdiff import report
from microdiff.jobs import job

with job(snakemake.log[0], "report_runtime") as log:
    table = report.runtime_table(sorted(Path("benchmarks").glob("*/*.tsv")))
    log.info("runtime per rule:\n%s", table.to_string(index=False))
    report.save(report.runtime_figure(table), snakemake.output[0])
