"""Ingest: any supported input image -> `raw.ome.zarr` (NGFF 0.4, pyramid, provenance).

Streams band by band: memory is bounded by one chunk-high band of one channel, never the image.
"""

from __future__ import annotations

import logging
import math

import numpy as np
from tqdm import tqdm

from . import provenance
from .atomic import atomic_output
from .errors import InputError
from .io import ngff
from .io.readers import open_image

log = logging.getLogger(__name__)


def ingest(
    src_path,
    out_path,
    axes: str | None = None,
    channel_names: list[str] | None = None,
    pixel_size: float | dict | None = None,
    chunk_bytes: int = 1 << 20,
    progress: bool = True,
    scene: int | str | None = None,
    source: dict | None = None,
) -> dict:
    """Write `src_path` as an NGFF image at `out_path`; return a summary of what was written.

    `channel_names` and `pixel_size` (um, a number for y and x, or a dict per axis) fill in what
    the file does not say; where the file says otherwise, the values given here win and a warning
    is logged. `scene` picks a scene of a multi-scene (vendor) file; `source` (for example a plate
    field's well, row, column and field) is recorded in the provenance as it is.
    """
    src = open_image(src_path, axes, scene)
    names = list(src.channel_names)
    if channel_names:
        if len(channel_names) != src.shape[0]:
            raise InputError(
                src_path,
                f"{len(channel_names)} channel names given for {src.shape[0]} channels",
            )
        if names and names != list(channel_names):
            log.warning("%s: channel names %s replaced by %s", src_path, names, channel_names)
        names = list(channel_names)
    scale = dict(src.scale)
    if pixel_size is not None:
        given = pixel_size if isinstance(pixel_size, dict) else {"y": pixel_size, "x": pixel_size}
        scale.update({a: float(v) for a, v in given.items()})
    bad = {a: v for a, v in scale.items() if not (np.isfinite(float(v)) and float(v) > 0)}
    if bad:  # `inf` would be written as `Infinity`, which is not JSON
        raise InputError(src_path, f"pixel size {bad} is not a positive finite number")
    shape, dtype = src.shape, src.dtype
    chunks = ngff.choose_chunks(shape, dtype, chunk_bytes)
    prov = provenance.record(
        "ingest",
        {
            "axes": axes,
            "channel_names": names,
            "pixel_size": pixel_size,
            "chunk_bytes": chunk_bytes,
        },
        inputs={"image": str(src_path)},
        source_axes=src.src_axes,
        **({"scene": scene} if scene not in (None, "") else {}),
        **({"source": source} if source else {}),
    )
    bar = tqdm(
        total=int(np.prod(shape)),
        unit="px",
        unit_scale=True,
        desc=f"ingest {src_path}",
        disable=not progress,
        mininterval=2.0,
    )
    small = math.prod(shape) <= ngff.BAND_PIXELS  # assembled in memory, written in one pass
    with atomic_output(out_path) as tmp, ngff.assembled(tmp, small) as target:
        group = ngff.create_image(
            target, shape, dtype, src.axes, scale, names, chunks, {"microdiff": prov}
        )
        ngff.copy_level0(src, group, progress=bar.update)
        ngff.fill_pyramid(group)
        ngff.set_display_windows(group)
        ngff.validate(target)
    bar.close()
    return {
        "path": str(out_path),
        "shape": list(shape),
        "dtype": str(dtype),
        "axes": src.axes,
        "channels": names or [f"ch{i}" for i in range(shape[0])],
        "scale": scale,
        "chunks": list(chunks),
        "levels": len(ngff.pyramid_shapes(shape)),
    }
