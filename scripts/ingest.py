"""Rule ingest: input image -> NGFF OME-Zarr."""

from microdiff.ingest import ingest
from microdiff.jobs import job

with job(snakemake.log[0], "ingest") as log:
    info = snakemake.params.sample
    summary = ingest(
        snakemake.input.image,
        snakemake.output[0],
        axes=info["axes"],
        channel_names=info["channels"],
        pixel_size=info["pixel_size"],
        chunk_bytes=snakemake.params.ingest["chunk_bytes"],
        scene=info.get("scene"),
        source=info.get("source"),
    )
    log.info("wrote %s", summary)
