"""Rule report_illumination: the flat-field and dark-field profiles per channel."""

from microdiff import report
from microdiff.jobs import job
from microdiff.report.illumination import profiles_figure

with job(snakemake.log[0], "report_illumination"):
    report.save(profiles_figure(snakemake.input[0]), snakemake.output[0])
