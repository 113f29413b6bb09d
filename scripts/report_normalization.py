"""Rule report_normalization: histograms, percentile ranges and noise curves per sample; the
curves also as a table (report_qc reads them instead of measuring them again)."""

from microdiff import provenance
from microdiff.jobs import job
from microdiff.report import (
    noise_curve,
    noise_curves_table,
    normalization_figure,
    read_json,
    read_small_channels,
    save,
)

with job(snakemake.log[0], "report_normalization"):
    samples = snakemake.params.samples
    max_px = snakemake.params.report.get("noise_px", 1024)
    norms = {s: read_json(p) for s, p in zip(samples, snakemake.input.norms)}
    noise = {}
    for s, raw in zip(samples, snakemake.input.raw):
        images = read_small_channels(raw, max_px)  # each sample read once, all its channels
        noise[s] = [noise_curve(images[c]) for c in range(len(norms[s]["channels"]))]
    record = provenance.record(
        "noise_curves", {"noise_px": int(max_px)}, inputs=list(snakemake.input.raw)
    )
    provenance.write_table(snakemake.output.curves, noise_curves_table(noise, max_px), record)
    save(normalization_figure(norms, noise), snakemake.output.figure)
