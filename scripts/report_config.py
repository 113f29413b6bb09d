"""Rule report_config: the configuration as run, software versions and the models' hashes."""

from pathlib import Path

from microdiff import report
from microdiff.jobs import job

with job(snakemake.log[0], "report_config"):
    trained = {name: path for name, path in snakemake.params.trained.items() if Path(path).is_dir()}
    report.write_text(report.config_page(snakemake.config, trained), snakemake.output[0])
