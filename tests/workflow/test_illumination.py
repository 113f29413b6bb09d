"""The illumination stage in real runs: an unevenly lit experiment segments better with it on,
and its parameters rerun it and what follows, never ingest."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import tifffile
import zarr

from microdiff.metrics import average_precision
from microdiff.simulate import simulate_image, write_sample

from .conftest import TINY, job_counts, snakemake, write_config

SHAPE = (192, 192)
SAMPLES = 6


def shared_falloff(shape, strength=0.85):
    """One illumination for every field (one microscope): the light falls from 1 on the left
    to 1 - strength on the right."""
    x = np.arange(shape[1], dtype=np.float32) / (shape[1] - 1)
    return np.broadcast_to(1 - strength * x, shape)


def vignetted_experiment(folder):
    """A sheet of fields whose light (not the camera offset) falls off towards a corner."""
    field = shared_falloff(SHAPE)
    rows = []
    for i in range(SAMPLES):
        sim = simulate_image(SHAPE, vignetting=0.0, background=0.1, photons=60, seed=100 + i)
        offset = sim.params["offset"]
        light = (sim.noisy.astype(np.float32) - offset) * field
        noisy = np.clip(np.rint(offset + light), 0, 65535).astype(np.uint16)
        path = write_sample(folder, f"f{i}", dataclasses.replace(sim, noisy=noisy), 0.5)
        rows.append({"sample": f"f{i}", "path": path.relative_to(folder).as_posix(),
                     "channels": ",".join(sim.channels), "pixel_size": 0.5})  # fmt: skip
    pd.DataFrame(rows).to_csv(folder / "samples.tsv", sep="\t", index=False)
    return folder / "samples.tsv"


def mean_ap(wd, kind="cells") -> float:
    aps = []
    for i in range(SAMPLES):
        truth = tifffile.imread(wd / "input" / "truth" / f"f{i}_{kind}.tif")
        root = zarr.open_group(str(wd / f"results/f{i}/segmentation.ome.zarr"), mode="r")
        aps.append(average_precision(truth, root[f"labels/{kind}/0"][:])[0])
    return float(np.mean(aps))


def test_correction_improves_segmentation_and_reruns_from_itself(tmp_path):
    vignetted_experiment(tmp_path / "input")
    sections = {
        "input": {"demo": None, "sheet": "input/samples.tsv", "glob": None},
        "restore": {**TINY["restore"], "enabled": False},
        "classify": {**TINY["classify"], "mode": "unsupervised"},
    }
    illum = {"enabled": False, "working_size": 64, "max_images": 64, "darkfield": True,
             "smoothness": None, "seed": 0}  # fmt: skip
    write_config(tmp_path, illumination=illum, **sections)
    snakemake(tmp_path)
    without = mean_ap(tmp_path)
    ingested = (tmp_path / "results/f0/raw.ome.zarr/.zattrs").stat().st_mtime_ns

    write_config(tmp_path, illumination={**illum, "enabled": True}, **sections)
    plan = job_counts(snakemake(tmp_path, "-n"))
    assert plan.get("illumination") == 1 and plan.get("normalize") == SAMPLES, plan
    assert "ingest" not in plan, plan
    snakemake(tmp_path)
    with_it = mean_ap(tmp_path)
    assert (tmp_path / "results/f0/raw.ome.zarr/.zattrs").stat().st_mtime_ns == ingested
    assert (tmp_path / "results/report/illumination.png").stat().st_size > 1000
    # one threshold over an unevenly lit image cuts the dim side's cells short (the fallback
    # cells of the nuclei-only model); corrected, they are whole
    assert with_it > without + 0.03, (without, with_it)

    write_config(tmp_path, illumination={**illum, "enabled": True, "working_size": 32}, **sections)
    plan = job_counts(snakemake(tmp_path, "-n"))
    assert plan.get("illumination") == 1 and plan.get("normalize") == SAMPLES, plan
    assert "ingest" not in plan and "tiles" not in plan, plan
