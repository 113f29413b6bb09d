"""Rule report_qc: one row per sample (intensity, noise, objects, uncertainty, classes), samples
outside the experiment's usual range flagged and listed first; a table, a page and a figure.

The noise curves are report_normalization's (its table), where it measured the same pixels."""

import pandas as pd

from microdiff import report
from microdiff.jobs import job
from microdiff.report import qc

with job(snakemake.log[0], "report_qc") as log:
    inp = snakemake.input
    noise_px = int(snakemake.params.report.get("noise_px", 1024))
    curves = report.curves_by_sample(pd.read_parquet(inp.curves), noise_px)
    rows = []
    for i, name in enumerate(snakemake.params.samples):
        rows.append(
            qc.sample_qc(
                name,
                inp.raw[i],
                report.read_json(inp.norms[i]),
                segments=pd.read_parquet(inp.segments[i]),
                tiles=pd.read_parquet(inp.tiles[i]),
                segmentation=inp.segmentation[i],
                classes=pd.read_parquet(inp.classes[i]),
                noise_px=noise_px,
                curves=curves.get(name),
            )
        )
    table, z = qc.qc_table(rows)
    flagged = table.loc[table["n_flags"] > 0, "sample"].tolist()
    log.info("QC: %d of %d samples flagged%s", len(flagged), len(table),
             f" ({', '.join(flagged[:10])})" if flagged else "")  # fmt: skip
    table.to_csv(snakemake.output.table, sep="\t", index=False)
    report.write_text(qc.qc_html(table, z), snakemake.output.page)
    report.save(qc.qc_figure(table, z), snakemake.output.figure)
