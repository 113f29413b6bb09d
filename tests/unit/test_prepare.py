"""Colour images to a nuclear channel (segment.prepare): the per-image rule and its effect."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from microdiff.segment import prepare


def discs(shape=(96, 128), centres=((24, 30), (60, 90), (70, 30)), r=9):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    mask = np.zeros(shape, bool)
    for cy, cx in centres:
        mask |= (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
    return mask


def contrast(plane, mask):
    """Mean inside minus mean outside, in units of the plane's std (> 0: bright nuclei)."""
    return float((plane[mask].mean() - plane[~mask].mean()) / plane.std())


def he_like(mask, rng):
    """Stained tissue: pink background, purple-blue (haematoxylin) nuclei, bright field."""
    rgb = np.empty((3, *mask.shape), np.float32)
    for c, (bg, nuc) in enumerate(zip((235, 190, 215), (95, 70, 160))):
        rgb[c] = np.where(mask, nuc, bg)
    return np.clip(rgb + rng.normal(0, 4, rgb.shape), 0, 255)


def test_bright_grey_background_gives_its_optical_density(rng):
    mask = discs()
    grey = np.where(mask, 90.0, 210.0) + rng.normal(0, 5, mask.shape)
    rgb = np.stack([grey] * 3).astype(np.float32)
    plane, conv = prepare.nuclear_channel(rgb)
    assert conv.method == prepare.HAEMATOXYLIN
    assert contrast(plane[0], mask) > 1.5  # the dark nuclei come out bright
    assert plane.shape == (1, *mask.shape) and plane.dtype == np.float32


def test_dark_background_gives_luminance(rng):
    mask = discs()
    rgb = np.zeros((3, *mask.shape), np.float32)
    rgb[2] = np.where(mask, 200.0, 10.0)  # a blue (DAPI-like) stain saved as RGB
    rgb += np.abs(rng.normal(0, 3, rgb.shape))
    plane, conv = prepare.nuclear_channel(rgb)
    assert conv.method == prepare.LUMINANCE
    assert contrast(plane[0], mask) > 1.5
    lo, hi = np.percentile(plane, [1, 99.8])
    assert abs(lo) < 0.05 and abs(hi - 1) < 0.05  # normalized like percentile_norm


def test_stained_tissue_gives_haematoxylin(rng):
    mask = discs()
    rgb = he_like(mask, rng)
    plane, conv = prepare.nuclear_channel(rgb)
    assert conv.method == prepare.HAEMATOXYLIN
    assert contrast(plane[0], mask) > 1.5


def test_the_rule_does_not_depend_on_bit_depth(rng):
    mask = discs()
    rgb = he_like(mask, rng)
    a = prepare.choose(rgb)
    b = prepare.choose(rgb / 255.0 * 4095.0)  # the same image as 12-bit data
    assert a.method == b.method == prepare.HAEMATOXYLIN
    pa = prepare.convert(rgb, a)
    pb = prepare.convert(rgb / 255.0 * 4095.0, b)
    np.testing.assert_allclose(pa, pb, atol=1e-3)


def test_blocks_are_converted_as_the_whole_image(rng):
    rgb = he_like(discs(), rng)
    conv = prepare.choose(rgb)
    view = prepare.NuclearView(rgb, conv)
    whole = prepare.convert(rgb, conv)
    block = view[(slice(None), slice(10, 50), slice(40, 100))]
    np.testing.assert_allclose(block[0], whole[10:50, 40:100], rtol=1e-5, atol=1e-6)


def test_stage_rule_needs_rgb_names_and_no_named_channel(rng):
    import zarr

    g = zarr.open_group(zarr.storage.MemoryStore(), mode="w")
    g.attrs["multiscales"] = [{"datasets": [{"path": "0"}]}]
    g.create_array("0", data=he_like(discs(), rng).astype(np.uint8))
    assert prepare.stage_conversion(g, ["R", "G", "B"], 0).method == prepare.HAEMATOXYLIN
    assert prepare.stage_conversion(g, ["R", "G", "B"], "B") is None
    assert prepare.stage_conversion(g, ["DAPI", "GFP", "RFP"], 0) is None


def test_not_three_channels_is_refused():
    with pytest.raises(ValueError, match="3 channels"):
        prepare.choose(np.zeros((2, 8, 8), np.float32))


def test_segment_stage_converts_an_rgb_png_and_records_it(tmp_path, rng):
    """An H&E-like RGB PNG through ingest and the segment stage (a pointwise stand-in model
    that calls bright pixels nuclei): the dark stained nuclei are found, the conversion is in
    the provenance. Without the conversion the bright background would be the foreground."""
    import zarr
    from PIL import Image

    from microdiff import normalize
    from microdiff.ingest import ingest
    from microdiff.metrics import average_precision
    from microdiff.segment.model import Model
    from microdiff.segment.stage import segment_image
    from microdiff.tiling import plan_store
    from tests.unit.test_segment import Oracle

    mask = discs()
    truth, _ = ndi.label(mask)
    rgb = he_like(mask, rng).astype(np.uint8)
    Image.fromarray(np.moveaxis(rgb, 0, -1)).save(tmp_path / "he.png")
    raw = tmp_path / "raw.ome.zarr"
    ingest(tmp_path / "he.png", raw, pixel_size=0.5, progress=False)
    normalize.compute([raw], (1.0, 99.8), tmp_path / "norm.json")
    plan = plan_store(raw, tile=64, halo=16, tiles_per_shard=2)
    params = {"samples": 2, "steps": 1, "kinds": ["nuclei"], "label_halo": 24}

    def run(name, **extra):
        out, table = tmp_path / f"{name}.ome.zarr", tmp_path / f"{name}.parquet"
        segment_image(raw, out, table, plan, Model(Oracle(), ("nuclei",), 1),
                      tmp_path / "norm.json", {**params, **extra})  # fmt: skip
        root = zarr.open_group(str(out), mode="r")
        ap = average_precision(truth, root["labels/nuclei/0"][:], [0.5])[0]
        return root.attrs["microdiff"]["colour_conversion"], ap

    conv, ap = run("auto")
    assert conv["method"] == prepare.HAEMATOXYLIN and ap >= 0.9
    conv, ap = run("red", nuclei_channel="R")  # a named channel: used as it is
    assert conv is None and ap < 0.5
