"""The segment stage over stores: shards + gather -> NGFF image with a labels group and the
object table; tiled equals untiled; stable ids; cells linked to nuclei; a small 3D input."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
import zarr
from scipy import ndimage as ndi

from microdiff import normalize
from microdiff.ingest import ingest
from microdiff.io import ngff
from microdiff.io.labels import validate_labels
from microdiff.metrics import match
from microdiff.segment import stage
from microdiff.segment.model import Model
from microdiff.segment.stage import segment_image
from microdiff.shipped import SEGMENT_CELLS
from microdiff.simulate import simulate_image, write_sample
from microdiff.tiling import plan_store, plan_tiles
from tests.unit.test_segment import Oracle

PARAMS = {"samples": 2, "steps": 2, "kinds": ["nuclei", "cells"], "label_halo": 40}


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    d = tmp_path_factory.mktemp("seg")
    sim = simulate_image((96, 160), density=500, seed=4)
    path = write_sample(d, "s", sim, pixel_size=0.5)
    ingest(path, d / "raw.ome.zarr", chunk_bytes=4096, progress=False)
    normalize.compute([d / "raw.ome.zarr"], (1.0, 99.8), d / "norm.json")
    return d, sim


def run(d, name, plan, params=PARAMS, cell_model=None):
    out, table = d / f"{name}.ome.zarr", d / f"{name}.parquet"
    summary = segment_image(
        d / "raw.ome.zarr",
        out,
        table,
        plan,
        Model(Oracle(), ("nuclei",), 1),
        d / "norm.json",
        params,
        cell_model=cell_model,
    )
    return out, pd.read_parquet(table), summary


class GrownNuclei(torch.nn.Module):
    """A stand-in cell model that looks only at the nuclei found (its third condition channel):
    cells are the found nuclei grown by 3 pixels."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x, sigma, cond=None):
        grown = torch.nn.functional.max_pool2d(cond[:, 2:3], 7, 1, 3)
        fg = torch.tanh((grown - 0.5) * 20)
        return torch.cat([fg, fg], 1) + 0.01 * torch.tanh(x)


@pytest.fixture(scope="module")
def tiled(sample):
    d, _ = sample
    plan = plan_store(d / "raw.ome.zarr", tile=32, halo=8, tiles_per_shard=4)
    assert plan["shard"].nunique() > 1
    return run(d, "tiled", plan)


def test_output_validates_with_labels_group(tiled):
    out, table, summary = tiled
    ngff.validate(out)
    assert validate_labels(out) == ["nuclei", "cells"]
    root = zarr.open_group(str(out), mode="r")
    names = [c["label"] for c in root.attrs["omero"]["channels"]]
    assert names == ["nuclei_prob", "nuclei_std", "cells_prob", "cells_std"]
    nuc = root["labels/nuclei/0"]
    assert nuc.dtype == np.int32 and nuc.shape == (96, 160)
    assert root["labels/nuclei"].attrs["multiscales"][0]["axes"][0]["name"] == "y"
    prov = root.attrs["microdiff"]
    assert prov["stage"] == "segment" and "fallback" in prov["method"]["cells"]
    assert prov["device"] == "cpu"
    assert set(table.columns) >= {
        "kind",
        "id",
        "uncertainty",
        "consistency",
        "area",
        "centroid_y",
        "centroid_x",
    }
    assert summary["objects"]["nuclei"] > 5
    assert (
        json.loads(
            __import__("pyarrow.parquet")
            .parquet.read_schema(out.with_suffix("").with_suffix(".parquet"))
            .metadata[b"microdiff"]
        )["stage"]
        == "segment"
    )


def test_cells_are_linked_to_their_nucleus(tiled):
    out, table, _ = tiled
    root = zarr.open_group(str(out), mode="r")
    nuc, cell = root["labels/nuclei/0"][:], root["labels/cells/0"][:]
    inside = nuc > 0
    assert (cell[inside] == nuc[inside]).all()  # a nucleus lies in the cell of the same id
    cells = table[table["kind"] == "cells"]
    assert set(cells["id"]) <= set(table[table["kind"] == "nuclei"]["id"])
    assert (cells["nucleus_id"] == cells["id"]).all()


def test_tiled_run_equals_untiled_run(sample, tiled):
    d, sim = sample
    out, table, _ = tiled
    whole = plan_tiles((96, 160), tile=256, halo=0, tiles_per_shard=1)
    out_w, table_w, _ = run(d, "whole", whole)
    a = zarr.open_group(str(out), mode="r")["labels/nuclei/0"][:]
    b = zarr.open_group(str(out_w), mode="r")["labels/nuclei/0"][:]
    m = match(b, a, 0.95)
    assert a.max() == b.max() and m["tp"] == b.max() and m["fp"] == 0
    assert (table["kind"] == "nuclei").sum() == (table_w["kind"] == "nuclei").sum()
    # the oracle's objects are the simulated nuclei: most are found
    assert match(sim.nuclei, a, 0.5)["tp"] >= 0.7 * sim.nuclei.max()


@pytest.mark.parametrize("held", [True, False])
def test_a_small_image_assembled_in_memory_equals_one_streamed_tile_by_tile(
    sample, tiled, monkeypatch, held
):
    """The gather holds a small image's store in memory and writes it once; a larger image's
    level 0 in memory up to HELD_BYTES, written to the store once (held); a still larger one
    streamed tile by tile through the store. Each writes the same arrays and the same table."""
    d, _ = sample
    out, table, _ = tiled
    monkeypatch.setattr(ngff, "BAND_PIXELS", 1000)  # not "small": the store on disk
    if not held:
        monkeypatch.setattr(stage, "HELD_BYTES", 0)  # level 0 streamed through the store
    plan = plan_store(d / "raw.ome.zarr", tile=32, halo=8, tiles_per_shard=4)
    out_s, table_s, _ = run(d, f"streamed_{held}", plan)
    a, b = zarr.open_group(str(out), mode="r"), zarr.open_group(str(out_s), mode="r")
    for key in ["0", "1", "labels/nuclei/0", "labels/nuclei/1", "labels/cells/0"]:
        if key in a:
            np.testing.assert_array_equal(a[key][:], b[key][:])
    pd.testing.assert_frame_equal(table, table_s, check_exact=True)


def test_the_cell_model_sees_the_nuclei_found_and_tiles_equal_the_whole_image(sample):
    d, _ = sample
    cells = Model(GrownNuclei(), ("cells",), 3)
    plans = {
        "cells_tiled": plan_store(d / "raw.ome.zarr", tile=32, halo=8, tiles_per_shard=4),
        "cells_whole": plan_tiles((96, 160), tile=256, halo=0, tiles_per_shard=1),
    }
    labels = {}
    for name, plan in plans.items():
        out, _, _ = run(d, name, plan, cell_model=cells)
        root = zarr.open_group(str(out), mode="r")
        assert root.attrs["microdiff"]["method"]["cells"] == "diffusion"
        nuclei_prob, cell_prob = root["0"][0], root["0"][2]
        grown = ndi.maximum_filter(nuclei_prob, 7, mode="mirror") > 0.5
        assert grown.mean() > 0.1 and ((cell_prob > 0.5) == grown).mean() > 0.99
        labels[name] = root["labels/cells/0"][:]
    a, b = labels["cells_tiled"], labels["cells_whole"]
    assert a.max() == b.max() > 5 and match(b, a, 0.95)["tp"] == len(np.unique(b[b > 0]))


def test_a_cell_model_needs_the_cytoplasm(sample):
    d, _ = sample
    plan = plan_tiles((96, 160), tile=256, halo=0, tiles_per_shard=1)
    one = Model(Oracle(), ("cells",), 1)  # the nuclear channel alone
    with pytest.raises(ValueError, match="nuclear and cytoplasm channels .2 condition"):
        run(d, "one", plan, cell_model=one)


def test_same_input_and_seed_give_the_same_ids(sample, tiled):
    d, _ = sample
    out, table, _ = tiled
    plan = plan_store(d / "raw.ome.zarr", tile=32, halo=8, tiles_per_shard=4)
    again, table2, _ = run(d, "again", plan)
    a = zarr.open_group(str(out), mode="r")["labels/nuclei/0"][:]
    b = zarr.open_group(str(again), mode="r")["labels/nuclei/0"][:]
    assert np.array_equal(a, b)
    pd.testing.assert_frame_equal(table, table2)


def test_small_3d_input(tmp_path):
    sim = simulate_image((4, 48, 64), n_cells=6, seed=1, channels=("nuclei",))
    path = write_sample(tmp_path, "v", sim, pixel_size=0.5)
    ingest(path, tmp_path / "raw.ome.zarr", chunk_bytes=8192, progress=False)
    normalize.compute([tmp_path / "raw.ome.zarr"], (1.0, 99.8), tmp_path / "norm.json")
    plan = plan_store(tmp_path / "raw.ome.zarr", tile=32, halo=8, tiles_per_shard=2)
    params = {**PARAMS, "kinds": ["nuclei"], "min_size": 8}
    out, table, _ = run(tmp_path, "v", plan, params)
    lab = zarr.open_group(str(out), mode="r")["labels/nuclei/0"]
    assert lab.shape == (4, 48, 64) and lab[:].max() == len(table) > 0
    assert "centroid_z" in table.columns
    ngff.validate(out)
    assert validate_labels(out) == ["nuclei"]


def test_readable_by_ome_zarr_py(tiled):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Reader

    out, _, _ = tiled
    nodes = list(Reader(parse_url(str(out)))())
    labels = [n for n in nodes if any(isinstance(s, Label) for s in n.specs)]
    assert len(labels) == 2 and tuple(labels[0].data[0].shape) == (96, 160)


def test_shipped_models_tiled_equal_untiled_on_cpu(tmp_path):
    """The shipped nuclei model, and the shipped cell model beside it (conditioned on the
    nuclei found in each tile)."""
    sim = simulate_image((160, 192), density=350, seed=11)
    path = write_sample(tmp_path, "n", sim, pixel_size=0.65)
    ingest(path, tmp_path / "raw.ome.zarr", chunk_bytes=8192, progress=False)
    normalize.compute([tmp_path / "raw.ome.zarr"], (1.0, 99.8), tmp_path / "norm.json")
    params = {"samples": 2, "steps": 2, "kinds": ["nuclei", "cells"], "label_halo": 48}
    labels, cells = {}, {}
    for name, plan in {
        "tiled": plan_store(tmp_path / "raw.ome.zarr", tile=64, halo=32, tiles_per_shard=4),
        "whole": plan_tiles((160, 192), tile=256, halo=0, tiles_per_shard=1),
    }.items():
        out, table = tmp_path / f"{name}.ome.zarr", tmp_path / f"{name}.parquet"
        segment_image(tmp_path / "raw.ome.zarr", out, table, plan, None,
                      tmp_path / "norm.json", params, device="cpu",
                      cell_model=SEGMENT_CELLS)  # fmt: skip
        root = zarr.open_group(str(out), mode="r")
        assert root.attrs["microdiff"]["device"] == "cpu"
        labels[name] = root["labels/nuclei/0"][:]
        cells[name] = root["labels/cells/0"][:]
    a, b = labels["tiled"], labels["whole"]
    m = match(b, a, 0.95)
    assert a.max() == b.max() and m["tp"] == b.max()
    a, b = cells["tiled"], cells["whole"]
    n = len(np.unique(b[b > 0]))
    assert n > 5 and match(b, a, 0.9)["tp"] >= n - 1
    # the shipped model is small and briefly trained (AP@0.5 0.23 here when written): it finds
    # nuclei out of the box, but a trained model (segment.train) does much better
    assert match(sim.nuclei, labels["whole"], 0.5)["tp"] >= 2
