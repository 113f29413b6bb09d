"""Rule report_illumination: the flat-field and dark-field profiles per channel."""

from microdiff import illumination_report, report
from microdiff.jobs import job

with job(snakemake.log[0], "report_illumination"):
    report.save(illumination_report.profiles_figure(snakemake.input[0]), snakemake.output[0])
