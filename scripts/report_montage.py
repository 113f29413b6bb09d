"""Rule report_montage: raw, restored, outlines and uncertainty of one sample."""

from microdiff import report
from microdiff.jobs import job

with job(snakemake.log[0], "report_montage"):
    inp = snakemake.input
    fig = report.montage_figure(
        inp.raw,
        inp.segmentation,
        restored=inp.restored[0] if inp.restored else None,
        norm=report.read_json(inp.norm),
        max_px=snakemake.params.report.get("max_px", 512),
    )
    report.save(fig, snakemake.output[0])
