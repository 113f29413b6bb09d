"""PNG and JPEG input (Pillow): grey and colour, through the reader, ingest, sheet, glob and CLI."""

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from microdiff import samples
from microdiff.cli import main
from microdiff.errors import InputError
from microdiff.ingest import ingest
from microdiff.io import ngff, open_image


def _write(path, data, mode=None):
    Image.fromarray(data, mode).save(path)
    return path


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_grey_png_is_one_channel(tmp_path, rng, dtype):
    data = rng.integers(0, np.iinfo(dtype).max, (37, 53), dtype=dtype)
    src = open_image(_write(tmp_path / "g.png", data))
    assert src.axes == "cyx" and src.shape == (1, 37, 53) and src.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(src.read()[0], data)
    np.testing.assert_array_equal(src.read((slice(3, 9), slice(10, 20)))[0], data[3:9, 10:20])
    assert src.channel_names == []


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_colour_png_is_three_channels_alpha_dropped(tmp_path, rng, mode):
    data = rng.integers(0, 255, (20, 30, len(mode)), dtype=np.uint8)
    src = open_image(_write(tmp_path / "c.png", data))
    assert src.axes == "cyx" and src.shape == (3, 20, 30) and src.channel_names == ["R", "G", "B"]
    np.testing.assert_array_equal(src.read(), np.moveaxis(data[..., :3], -1, 0))


def test_palette_png_becomes_rgb(tmp_path, rng):
    im = Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).quantize(8)
    im.save(tmp_path / "p.png")
    expect = np.moveaxis(np.asarray(im.convert("RGB")), -1, 0)
    np.testing.assert_array_equal(open_image(tmp_path / "p.png").read(), expect)


@pytest.mark.parametrize("ext", ["jpg", "jpeg"])
def test_jpeg_grey_and_colour(tmp_path, ext):
    yy, xx = np.mgrid[0:48, 0:64]
    grey = (yy * 4 + xx).astype(np.uint8)  # smooth, so JPEG's loss is small
    Image.fromarray(grey).save(tmp_path / f"g.{ext}", quality=95)
    src = open_image(tmp_path / f"g.{ext}")
    assert src.shape == (1, 48, 64) and src.dtype == np.uint8
    assert np.abs(src.read()[0].astype(int) - grey).max() <= 4
    rgb = np.stack([grey, grey[::-1], 255 - grey], axis=-1)
    Image.fromarray(rgb).save(tmp_path / f"c.{ext}", quality=95)
    src = open_image(tmp_path / f"c.{ext}")
    assert src.shape == (3, 48, 64) and src.channel_names == ["R", "G", "B"]
    assert np.abs(src.read().astype(int) - np.moveaxis(rgb, -1, 0)).mean() < 3


def test_ingest_rgb_png_carries_channel_names(tmp_path, rng):
    data = rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)
    out = tmp_path / "raw.ome.zarr"
    summary = ingest(_write(tmp_path / "c.png", data), out, pixel_size=0.65, progress=False)
    assert summary["channels"] == ["R", "G", "B"] and summary["shape"] == [3, 40, 50]
    back = open_image(out)
    assert back.channel_names == ["R", "G", "B"] and back.scale["x"] == pytest.approx(0.65)
    np.testing.assert_array_equal(back.read(), np.moveaxis(data, -1, 0))
    ngff.validate(out)


def test_sheet_glob_and_cli_take_png_and_jpeg(tmp_path, rng, capsys):
    data = rng.integers(0, 255, (24, 24), dtype=np.uint8)
    _write(tmp_path / "w1.png", data)
    Image.fromarray(data).save(tmp_path / "w2.jpg")
    df = samples.from_glob(str(tmp_path / "w*.*"))
    assert list(df.index) == ["w1", "w2"]
    (tmp_path / "s.tsv").write_text("sample\tpath\nA\tw1.png\nB\tw2.jpg\n")
    df = samples.from_sheet(tmp_path / "s.tsv")
    samples.check_channel_counts(df)
    assert df.loc["B", "path"] == str(tmp_path / "w2.jpg")
    assert main(["ingest", str(tmp_path / "w2.jpg"), str(tmp_path / "o.ome.zarr")]) == 0
    assert open_image(tmp_path / "o.ome.zarr").shape == (1, 24, 24)


def test_rgb_and_grey_mixed_is_refused(tmp_path, rng):
    _write(tmp_path / "a.png", rng.integers(0, 255, (8, 8), dtype=np.uint8))
    _write(tmp_path / "b.png", rng.integers(0, 255, (8, 8, 3), dtype=np.uint8))
    with pytest.raises(InputError, match="has 3 channel"):
        samples.check_channel_counts(samples.from_glob(str(tmp_path / "*.png")))


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def test_16bit_colour_png_is_refused_not_truncated(tmp_path):
    # Pillow cannot write one; the header (all Pillow reads at open) is enough to be refused.
    ihdr = struct.pack(">IIBBBBB", 8, 8, 16, 2, 0, 0, 0)
    (tmp_path / "c16.png").write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr))
    with pytest.raises(InputError, match="c16.png: 16-bit colour PNG is not supported"):
        open_image(tmp_path / "c16.png")


def test_garbage_png_names_file(tmp_path):
    (tmp_path / "g.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="g.png: not a readable PNG/JPEG"):
        open_image(tmp_path / "g.png")
