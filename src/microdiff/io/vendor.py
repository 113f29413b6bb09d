"""Vendor formats (Nikon ND2, Zeiss CZI, Leica LIF) through bioio and its reader plugins.

Optional: `pip install microdiff[formats]` brings bioio and the plugins. Without them, opening
such a file is a one-line `InputError` that names the file and the extra. A file holds one or
more scenes (positions); each is read as its own image, chosen by index or by name. Pixels are
read lazily through bioio's dask arrays, region by region, like every other reader.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

from ..errors import InputError
from .readers import ImageSource, _check_array, _check_axes

# extension -> (bioio plugin module, pip name of the plugin)
PLUGINS = {
    ".nd2": ("bioio_nd2", "bioio-nd2"),
    ".czi": ("bioio_czi", "bioio-czi"),
    ".lif": ("bioio_lif", "bioio-lif"),
}
INSTALL = "pip install 'microdiff[formats]'"


def is_vendor(path) -> bool:
    return str(path).lower().endswith(tuple(PLUGINS))


def _reader_class(path: str, plugin: str | None = None):
    """The bioio reader class for `path` (or the named plugin module), or a one-line error."""
    if plugin is None:
        ext = next((e for e in PLUGINS if path.lower().endswith(e)), Path(path).suffix.lower())
        if ext not in PLUGINS:
            raise InputError(path, f"no bioio reader for '{ext}' files (known: {sorted(PLUGINS)})")
        module, pip_name = PLUGINS[ext]
    else:
        module, pip_name = plugin, plugin.replace("_", "-")
    for needed in ("bioio", module):
        if importlib.util.find_spec(needed) is None:
            raise InputError(path, f"reading this format needs bioio and {pip_name}: {INSTALL}")
    return importlib.import_module(module).Reader


def _bioimage(path: str, plugin: str | None = None):
    from bioio import BioImage

    reader = _reader_class(path, plugin)
    try:
        return BioImage(path, reader=reader)
    except Exception as err:
        raise InputError(
            path, f"not readable by {reader.__module__.split('.')[0]} ({err})"
        ) from err


def scenes(path, plugin: str | None = None) -> list[str]:
    """The scene (position) ids of a file, in file order."""
    return [str(s) for s in _bioimage(str(path), plugin).scenes]


def open_bioio(
    path, axes: str | None = None, scene: int | str | None = None, plugin: str | None = None
) -> ImageSource:
    """Open one scene (index or id; default the first) of a file bioio reads, as (c, [z,] y, x).

    `plugin` names the bioio reader module to use (default: by extension, ND2/CZI/LIF). A time
    axis longer than 1 is refused, as for every input; RGB samples become channels.
    """
    path = str(path)
    if not Path(path).exists():
        raise InputError(path, "file not found")
    img = _bioimage(path, plugin)
    if scene is not None and str(scene) != "":
        ids = [str(s) for s in img.scenes]
        key = str(scene)
        index = ids.index(key) if key in ids else (int(key) if key.isdigit() else None)
        if index is None or index >= len(ids):
            raise InputError(path, f"no scene {scene!r} (scenes: {ids})")
        img.set_scene(index)
    dims = {d: int(n) for d, n in zip(img.dims.order, img.dims.shape)}
    if dims.get("T", 1) > 1:
        raise InputError(
            path,
            f"unsupported axis layout: time axis of size {dims['T']} "
            "(only c, z, y, x; time series must be split into samples)",
        )
    rgb = dims.get("S", 1) > 1
    if rgb and dims.get("C", 1) > 1:
        raise InputError(path, "RGB samples with more than one channel are not supported")
    order = ("S" if rgb else "C") + ("Z" if dims.get("Z", 1) > 1 else "") + "YX"
    fixed = {d: 0 for d in "TCZS" if d in dims and d not in order}
    try:
        array = img.get_image_dask_data(order, **fixed)
    except Exception as err:
        raise InputError(path, f"cannot read pixel data ({type(err).__name__}: {err})") from err
    src_axes = _check_axes(path, order.lower(), array.shape)
    if axes is not None and sorted(axes.lower().replace("s", "c")) != sorted(src_axes):
        raise InputError(path, f"axes '{axes}' do not fit this file (layout {src_axes})")
    _check_array(path, array.shape, array.dtype)
    sizes = img.physical_pixel_sizes
    scale = {
        a: float(v)
        for a, v in zip("zyx", (sizes.Z, sizes.Y, sizes.X))
        if v is not None and v > 0 and a in src_axes
    }
    names = ["R", "G", "B"][: array.shape[0]] if rgb else [str(n) for n in img.channel_names or []]
    return ImageSource(path, array, src_axes, scale, names)
