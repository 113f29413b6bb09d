"""The illumination stage: BaSiC profiles recover a known vignetting; corrected reads."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr

from microdiff import illumination, normalize, provenance
from microdiff.io import ngff
from microdiff.simulate import simulate_image

SHAPE = (128, 128)
OFFSET = 100.0
NAMES = ("nuclei", "cytoplasm")


def vignetting(shape, strength=0.5, centre=(0.45, 0.55)):
    """A known off-centre radial fall-off: 1 at the centre, 1 - strength at the corners."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    y = (yy - shape[0] * centre[0]) / (shape[0] / 2)
    x = (xx - shape[1] * centre[1]) / (shape[1] / 2)
    return 1 - strength * (y**2 + x**2) / 2


def write_raw(path, image):
    """An NGFF image that says it was ingested (the stage corrects only those)."""
    group = ngff.create_image(path, image.shape, image.dtype, "cyx", channel_names=NAMES,
                              attrs={"microdiff": provenance.record("ingest", {})})  # fmt: skip
    group["0"][...] = image
    return path


@pytest.fixture(scope="module")
def vignetted(tmp_path_factory):
    """24 simulated fields with a real background and one shared, known vignetting applied to
    the light (the camera offset is not vignetted)."""
    root = tmp_path_factory.mktemp("illum")
    field = vignetting(SHAPE)
    stores, masks = [], []
    for s in range(24):
        sim = simulate_image(SHAPE, vignetting=0.0, background=0.2, photons=50, seed=s)
        light = sim.noisy.astype(np.float32) - OFFSET
        img = np.clip(np.rint(OFFSET + light * field), 0, 65535).astype(np.uint16)
        stores.append(write_raw(root / f"s{s}.ome.zarr", img))
        masks.append(sim.cells == 0)
    out = root / "illumination.ome.zarr"
    prov = illumination.estimate(stores, {"working_size": 64}, out)
    return stores, masks, out, prov, field


def background_profile(images, masks, blocks=8):
    """The experiment's mean cell-free intensity in blocks x blocks regions, over its mean."""
    by = (np.arange(SHAPE[0]) * blocks) // SHAPE[0]
    bx = (np.arange(SHAPE[1]) * blocks) // SHAPE[1]
    b = by[:, None] * blocks + bx[None, :]
    acc = sum(np.bincount(b[m], img[m], blocks * blocks) for img, m in zip(images, masks))
    cnt = sum(np.bincount(b[m], None, blocks * blocks) for m in masks)
    prof = acc / cnt
    return prof / prof.mean()


def test_corrected_background_is_flat(vignetted):
    """Background above the camera offset: +-50% across the field before, within 5% after."""
    stores, masks, out, prov, _ = vignetted
    profiles = illumination.Profiles.load(out)
    raw = [np.asarray(zarr.open_group(str(s))["0"][0], np.float32) - OFFSET for s in stores]
    fixed = [illumination.level0(s, profiles)[0] - OFFSET for s in stores]
    before, after = background_profile(raw, masks), background_profile(fixed, masks)
    assert np.abs(before - 1).max() > 0.3
    assert np.abs(after - 1).max() < 0.05, after.round(3)
    assert prov["images"] == 24 and prov["grid"] == [64, 64]
    attrs = zarr.open_group(str(out)).attrs
    assert attrs["microdiff"]["stage"] == "illumination"
    assert [c["label"] for c in attrs["omero"]["channels"]][:2] == [
        "flatfield:nuclei", "flatfield:cytoplasm"]  # fmt: skip
    ngff.validate(out)


def test_flatfield_follows_the_vignetting(vignetted):
    _, _, out, _, field = vignetted
    flat = illumination.Profiles.load(out).flat[0]
    small = illumination.shrink_plane(field[None], (0,), flat.shape)
    assert np.corrcoef(flat.ravel(), small.ravel())[0, 1] > 0.9


def test_corrected_view_reads_any_region_alike(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.integers(100, 1000, (2, 3, 40, 50)).astype(np.uint16)
    group = ngff.create_image(tmp_path / "a.ome.zarr", img.shape, img.dtype, "czyx",
                              attrs={"microdiff": provenance.record("ingest", {})})  # fmt: skip
    group["0"][...] = img
    flat = 0.5 + rng.random((2, 8, 10)).astype(np.float32)
    prof = illumination.Profiles(flat, rng.random((2, 8, 10)) * 50)
    view = illumination.level0(group, prof)
    full = view[...]
    assert full.shape == img.shape and full.dtype == np.float32
    assert np.allclose(view[1, 2, 5:17, 3:40:3], full[1, 2, 5:17, 3:40:3])
    assert np.allclose(view[(slice(None), 0, slice(10, 20))], full[:, 0, 10:20])
    # at the grid's cell centres (pixel 2 of each 5 x 5 cell) the profile is its stored value
    F, _ = prof.at([1], [2, 7], [2, 7], (40, 50))
    assert np.allclose(F[0], flat[1][:2, :2])
    # a non-ingested store (restored, say) is never corrected again
    other = ngff.create_image(tmp_path / "b.ome.zarr", img.shape, img.dtype, "czyx")
    assert isinstance(illumination.level0(other, prof), zarr.Array)


def test_norm_json_names_profiles_and_stages_read_corrected(vignetted, tmp_path):
    stores, _, out, _, _ = vignetted
    norm_path = tmp_path / "sub" / "norm.json"
    plain = normalize.compute([stores[0]], (1.0, 99.8))
    stats = normalize.compute([stores[0]], (1.0, 99.8), norm_path, illumination=out)
    with open(norm_path) as fh:
        rel = json.load(fh)["illumination"]
    assert not rel.startswith("/")
    norm = normalize.Normalizer.from_json(norm_path)
    assert norm.illumination is not None and norm.illumination.channels == 2
    assert isinstance(normalize.level0(stores[0], norm), illumination.Corrected)
    assert stats["channels"][0]["high"] != plain["channels"][0]["high"]
    merged = normalize.merge_files([norm_path], (1.0, 99.8), tmp_path / "exp" / "norm.json")
    again = normalize.Normalizer.from_json(tmp_path / "exp" / "norm.json")
    assert merged["illumination"] and np.allclose(again.illumination.flat, norm.illumination.flat)


def test_cli_estimates_profiles_and_normalize_takes_them(vignetted, tmp_path):
    from microdiff.cli import main

    stores = [str(s) for s in vignetted[0][:8]]
    out, norm = tmp_path / "ill.ome.zarr", tmp_path / "norm.json"
    assert main(["illumination", *stores, "--out", str(out), "--working-size", "32"]) == 0
    assert illumination.Profiles.load(out).flat.shape[-2:] == (32, 32)
    assert main(["illumination", *stores, "--out", str(out)]) == 2  # exists: not replaced
    assert main(["normalize", stores[0], "--out", str(norm), "--illumination", str(out)]) == 0
    assert isinstance(normalize.level0(stores[0], normalize.Normalizer.from_json(norm)),
                      illumination.Corrected)  # fmt: skip
