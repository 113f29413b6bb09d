"""Rule ingest (one sample, or a batch of them): input image -> NGFF OME-Zarr."""

from microdiff.ingest import ingest
from microdiff.jobs import each, job

with job(snakemake.log[0], "ingest") as log:
    for m in each(snakemake, log):
        info = m.params.sample
        summary = ingest(
            m.input.image,
            m.output.raw,
            axes=info["axes"],
            channel_names=info["channels"],
            pixel_size=info["pixel_size"],
            chunk_bytes=m.params.ingest["chunk_bytes"],
            scene=info.get("scene"),
            source=info.get("source"),
        )
        log.info("wrote %s", summary)
