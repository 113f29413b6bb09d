"""segment.scale: the model's object size over the image's, resampling tiles there and back."""

import numpy as np
import pandas as pd
import pytest
import torch
import zarr
from scipy import ndimage as ndi

from microdiff.segment import instances, scale
from microdiff.segment.model import Model
from tests.unit.test_prepare import discs
from tests.unit.test_segment import Oracle


def test_median_diameter_skips_objects_on_the_border():
    lab = np.zeros((60, 60), np.int32)
    lab[10:20, 10:20] = 1  # 100 px
    lab[30:34, 30:34] = 2  # 16 px
    lab[40:50, 40:50] = 3  # 100 px
    lab[0:30, 50:60] = 4  # touches the border: not counted
    d, n = scale.median_diameter(lab)
    assert n == 3 and d == pytest.approx(np.sqrt(400 / np.pi))
    assert scale.median_diameter(np.zeros((8, 8), np.int32)) == (None, 0)
    p10, p50, p90 = scale.training_diameters([lab])
    assert p50 == pytest.approx(np.sqrt(400 / np.pi), abs=0.01) and p10 < p50 < p90


def test_choose_numbers_auto_snap_clip_and_errors():
    assert scale.choose(1, 28.0).factor == 1.0
    assert scale.choose(2.5, 28.0) == scale.Scale(2.5, "fixed")
    with pytest.raises(ValueError, match="segment.scale must be auto or a positive number"):
        scale.choose(-1, 28.0)
    disc = discs((200, 200), [(50 + 40 * i, 50 + 40 * j) for i in range(3) for j in range(3)], 5)
    lab = ndi.label(disc)[0]  # nine discs of radius 5: diameter about 10
    z = scale.choose("auto", 30.0, lambda: lab)
    assert z.method == "auto" and z.factor == pytest.approx(30.0 / z.measured_px, rel=1e-2)
    assert 2.5 < z.factor < 3.5
    assert scale.choose("auto", z.measured_px * 1.1, lambda: lab).factor == 1.0  # snapped
    assert scale.choose("auto", 1000.0, lambda: lab).factor == scale.LIMITS[1]  # clipped
    few = scale.choose("auto", 30.0, lambda: lab * (lab <= 2))
    assert few.factor == 1.0 and "only 2" in few.method
    assert scale.choose("auto", None, lambda: lab).factor == 1.0  # model without a size
    d = z.measured_px  # inside the model's range: as it is; outside: to the model's median
    assert scale.choose("auto", 3 * d, lambda: lab, (0.5 * d, 4 * d)).factor == 1.0
    assert scale.choose("auto", 3 * d, lambda: lab, (2 * d, 4 * d)).factor == pytest.approx(
        3, abs=0.01
    )
    assert scale.choose("auto", d / 4, lambda: lab, (d / 8, d / 2)).factor == pytest.approx(
        0.25, abs=0.01
    )


def test_resampled_returns_the_batch_grid_and_scales_origins():
    y, x = np.mgrid[0:40, 0:60]
    batch = np.stack([np.sin(x / 9.0) + np.cos(y / 7.0)] * 2)[:, None].astype(np.float32)
    seen = {}

    def fn(b, origins):
        seen["shape"], seen["origins"] = b.shape, origins
        return b * 2

    out = scale.resampled(fn, batch, [(0, 0), (10, 20)], 2.0)
    assert seen["shape"] == (2, 1, 80, 120) and seen["origins"] == [(0, 0), (20, 40)]
    assert out.shape == batch.shape
    assert np.abs(out[..., 2:-2, 2:-2] - 2 * batch[..., 2:-2, 2:-2]).max() < 0.02  # smooth image
    assert scale.resampled(fn, batch, [(0, 0)], 1.0) is not None and seen["shape"][2] == 40
    small = scale.resampled(lambda b, o: b, batch, [(0, 0)] * 2, 0.5)
    assert small.shape == batch.shape


def test_params_are_rescaled_to_model_pixels():
    p = instances.Params(smooth=2.0, min_size=16, min_seed=4)
    q = scale.params_for(p, 2.0)
    assert (q.smooth, q.min_size, q.min_seed) == (1.0, 4, 1)
    assert scale.params_for(p, 1.0) is p
    # resampled up (objects smaller than the training's): the samples' objects at full resolution
    assert (q.consistency_grid, scale.params_for(p, 0.5).consistency_grid) == (1, 2)


def test_segment_stage_resamples_and_records_the_scale(tmp_path, monkeypatch):
    """Discs of radius 9 (diameter about 18) through ingest and the segment stage with a
    pointwise stand-in model that says it was trained on objects of 36 px: auto doubles the
    image, labels stay on the image grid and match the discs, the provenance says how. A
    whole-image run finds the factor once for all its shards, as each shard job does alone."""
    import tifffile

    from microdiff import normalize
    from microdiff.ingest import ingest
    from microdiff.metrics import average_precision
    from microdiff.segment.stage import segment_gather, segment_image, segment_shard
    from microdiff.tiling import plan_store

    centres = [(30 + 45 * i, 30 + 45 * j) for i in range(3) for j in range(4)]
    mask = discs((160, 200), centres, 9)
    truth = ndi.label(mask)[0]
    tifffile.imwrite(tmp_path / "discs.tif", (mask * 3000 + 200).astype(np.uint16))
    raw = tmp_path / "raw.ome.zarr"
    ingest(tmp_path / "discs.tif", raw, pixel_size=0.5, chunk_bytes=4096, progress=False)
    normalize.compute([raw], (1.0, 99.8), tmp_path / "norm.json")
    plan = plan_store(raw, tile=64, halo=16, tiles_per_shard=4)
    params = {"samples": 2, "steps": 1, "kinds": ["nuclei"], "label_halo": 24}
    model = Model(Oracle(), ("nuclei",), 1, diameter=36.0)

    def run(name, value):
        out, table = tmp_path / f"{name}.ome.zarr", tmp_path / f"{name}.parquet"
        segment_image(raw, out, table, plan, model, tmp_path / "norm.json",
                      {**params, "scale": value})  # fmt: skip
        root = zarr.open_group(str(out), mode="r")
        labels = root["labels/nuclei/0"][:]
        assert labels.shape == mask.shape
        return root.attrs["microdiff"]["scale"], average_precision(truth, labels, [0.5])[0]

    calls = []
    estimate = scale.estimate

    def counted(*a, **kw):
        calls.append(1)
        return estimate(*a, **kw)

    monkeypatch.setattr(scale, "estimate", counted)
    zoom, ap = run("auto", "auto")
    assert plan["shard"].nunique() > 1 and len(calls) == 1  # once per image, not per shard
    assert zoom["method"] == "auto" and 1.8 < zoom["factor"] < 2.2 and ap >= 0.9
    # shard jobs of their own (the rules segment_shard, segment_gather) each find it: the same
    stores = []
    for i in sorted(plan["shard"].unique()):
        stores.append(tmp_path / f"shard-{i}.zarr")
        segment_shard(raw, plan, int(i), stores[-1], model, tmp_path / "norm.json",
                      {**params, "scale": "auto"})  # fmt: skip
    assert len(calls) == 1 + len(stores)
    segment_gather(raw, plan, stores, tmp_path / "jobs.ome.zarr", tmp_path / "jobs.parquet",
                   tmp_path / "norm.json", {**params, "scale": "auto"})  # fmt: skip
    jobs = zarr.open_group(str(tmp_path / "jobs.ome.zarr"), mode="r")
    whole = zarr.open_group(str(tmp_path / "auto.ome.zarr"), mode="r")
    assert jobs.attrs["microdiff"]["scale"] == zoom
    np.testing.assert_array_equal(jobs["labels/nuclei/0"][:], whole["labels/nuclei/0"][:])
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "jobs.parquet"),
                                  pd.read_parquet(tmp_path / "auto.parquet"))  # fmt: skip
    assert zoom["model_px"] == 36.0 and 16 < zoom["measured_px"] < 20
    zoom, ap = run("fixed", 0.5)
    assert zoom == {"factor": 0.5, "method": "fixed", "measured_px": None, "model_px": None}
    assert ap >= 0.9


class Specks(torch.nn.Module):
    """A stand-in denoiser that sees blobs in its own noise, not in the image: each sample's
    objects are somewhere else, as a model's specks on an empty image are."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x, sigma, cond=None):
        blobs = torch.nn.functional.avg_pool2d(x[:, :1], 9, stride=1, padding=4)
        fg = torch.tanh(40 * blobs)
        return torch.cat([fg, fg], 1)


def test_auto_ignores_objects_the_second_sample_does_not_find(rng):
    image = rng.random((1, 256, 256)).astype(np.float32) * 0.05  # an empty field
    model = Model(Specks(), ("nuclei",), 1, diameter=36.0, diameter_range=(20.0, 50.0))
    params = instances.Params()
    z = scale.estimate(model, image, "auto", params)
    assert z.factor == 1.0 and z.method.startswith("auto (only")
    crop = scale.central_crop(image)
    from microdiff.segment.model import predict, shard_channels

    one = shard_channels(predict(model, crop[None], [(0, 0)], 1, 1, pad=32))[0]
    specks = instances.extract(one[3], one[4], params)[0]
    assert specks.max() >= scale.MIN_OBJECTS  # one sample alone would have been measured


def test_training_pairs_are_resampled_to_the_model_size_as_auto_would():
    """tools/train_default_segment.py --normalise-scale: a simulated pair whose nuclei are
    outside the model's range is resampled (labels nearest, still integer instances) so its
    median diameter is the model's; one inside it is left as it is."""
    import importlib.util
    import json
    from pathlib import Path

    from microdiff.normalize import percentile_norm
    from microdiff.simulate import simulate_image

    sim = simulate_image((192, 192), channels=("nuclei",), density=400, seed=3)
    img, lab = percentile_norm(sim.noisy.astype(np.float32)), sim.nuclei.astype(np.int32)
    d, n = scale.median_diameter(lab)
    assert n >= scale.MIN_OBJECTS
    out, labs, z = scale.to_model_size(img, [lab], 2 * d, (1.5 * d, 3 * d))
    assert z.factor == pytest.approx(2, abs=0.01) and z.measured_px == pytest.approx(d, abs=0.01)
    assert out.shape == (1, 384, 384) and labs[0].shape == (384, 384)
    assert labs[0].dtype == np.int32 and set(np.unique(labs[0])) == set(np.unique(lab))
    assert scale.median_diameter(labs[0])[0] == pytest.approx(2 * d, rel=0.1)
    same = scale.to_model_size(img, [lab], 1.2 * d, (0.5 * d, 3 * d))
    assert same[0] is img and same[1][0] is lab and same[2].factor == 1
    small = scale.resample_labels(lab, (96, 96))  # shrinking: nearest keeps values, no mixing
    assert small.dtype == np.int32 and set(np.unique(small)) <= set(np.unique(lab))
    # the tool's option reads the model's recorded size from its config
    tool = Path(__file__).resolve().parents[2] / "tools" / "train_default_segment.py"
    spec = importlib.util.spec_from_file_location("train_default_segment", tool)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    ref = json.loads((Path(mod.DEFAULT_MODEL) / "config.json").read_text())["segment"]
    model_px, model_range = ref["object_diameter"], ref["object_diameter_range"]
    imgs, labels, factors, norm = mod.normalise_scale([img, img], [[lab], [lab]], mod.DEFAULT_MODEL)
    assert norm == (model_px, model_range) and factors[0] == factors[1]
    f = scale.choose("auto", model_px, lambda: lab, model_range).factor
    assert factors[0] == f and imgs[0].shape[-2:] == scale.size_for(img.shape, f)


def test_first_pass_samples_of_a_whole_image_are_not_drawn_again(tmp_path, monkeypatch):
    """An image of one tile is measured whole; at factor 1 the first pass's two samples are the
    stage's first two: the network draws only the other K - 2, and the labels and table are
    those of drawing all K."""
    import tifffile

    from microdiff import normalize
    from microdiff.ingest import ingest
    from microdiff.segment.stage import segment_image
    from microdiff.tiling import plan_store

    mask = discs((160, 200), [(30 + 45 * i, 30 + 45 * j) for i in range(3) for j in range(4)], 9)
    tifffile.imwrite(tmp_path / "discs.tif", (mask * 3000 + 200).astype(np.uint16))
    raw = tmp_path / "raw.ome.zarr"
    ingest(tmp_path / "discs.tif", raw, pixel_size=0.5, chunk_bytes=4096, progress=False)
    normalize.compute([raw], (1.0, 99.8), tmp_path / "norm.json")
    plan = plan_store(raw, tile=256, halo=16)
    assert len(plan) == 1
    calls = []

    class Counted(Oracle):
        def forward(self, x, sigma, cond=None):
            calls.append(x.shape[0])
            return super().forward(x, sigma, cond)

    model = Model(Counted(), ("nuclei",), 1, diameter=18.0)  # the discs' size: factor 1

    def run(name, steps=1):
        out, table = tmp_path / f"{name}.ome.zarr", tmp_path / f"{name}.parquet"
        calls.clear()
        params = {"samples": 4, "steps": steps, "kinds": ["nuclei"], "scale": "auto"}
        segment_image(raw, out, table, plan, model, tmp_path / "norm.json", params)
        root = zarr.open_group(str(out), mode="r")
        assert root.attrs["microdiff"]["scale"]["factor"] == 1.0
        return root["labels/nuclei/0"][:], pd.read_parquet(table), len(calls)

    labels, table, n = run("kept")
    assert n == 2 + 2  # the first pass's two samples, then samples 3 and 4
    assert labels.max() == 12 and table["consistency"].min() > 0.5
    monkeypatch.setattr(scale.Scale, "first_samples", lambda self, *a: None)
    again, again_table, n = run("drawn")
    assert n == 2 + 4
    np.testing.assert_array_equal(labels, again)
    pd.testing.assert_frame_equal(table, again_table)
    monkeypatch.undo()
    assert run("two_steps", steps=2)[2] == 2 + 4 * 2  # the first pass has one step: not reused
