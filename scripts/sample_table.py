"""Rule sample_table: one row per sample (shape, channels, tiles, normalization)."""

from microdiff import experiment
from microdiff.jobs import job

with job(snakemake.log[0], "sample_table"):
    names = snakemake.params.samples
    inp = snakemake.input
    sources = snakemake.params.sources
    stores = {
        name: {"raw": raw, "tiles": tiles, "norm": norm, "source": sources.get(name)}
        for name, raw, tiles, norm in zip(names, inp.raw, inp.tiles, inp.norm)
    }
    experiment.write_tsv(experiment.sample_table(stores), snakemake.output[0])
