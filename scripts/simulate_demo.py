"""Rule simulate_demo: write the demo experiment with microdiff.simulate."""

from pathlib import Path

from microdiff.jobs import job
from microdiff.simulate import write_experiment

with job(snakemake.log[0], "simulate_demo"):
    demo = snakemake.params.demo
    folder = Path(snakemake.output.sheet).parent
    write_experiment(
        folder,
        n_samples=demo["samples"],
        shape=tuple(demo["shape"]),
        seed=demo.get("seed", 0),
        pixel_size=demo.get("pixel_size", 0.65),
        prefix="demo",
        photons=demo.get("photons", 30),
    )
