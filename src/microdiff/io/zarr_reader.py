"""Reading Zarr arrays and OME-Zarr images (NGFF 0.4 and 0.5) as an `ImageSource`.

Broken metadata and missing chunk files are `InputError`s naming the store: zarr reads a missing
chunk as its fill value, so a deleted or never-copied chunk of a microscope image would otherwise
become a silent block of zeros. A store written sparse on purpose is read when the environment
sets `MICRODIFF_ALLOW_SPARSE_ZARR=1`.
"""

from __future__ import annotations

import os

import zarr

from ..errors import AxesUnknown, InputError
from . import ngff
from .readers import ImageSource, _check_array, _check_axes

SPARSE_ENV = "MICRODIFF_ALLOW_SPARSE_ZARR"


def _ngff_meta(path: str, attrs: dict) -> dict | None:
    """The NGFF image metadata of a group's attributes (`ngff.metadata`), its multiscales
    checked; None without multiscales."""
    meta = ngff.metadata(attrs)
    if "multiscales" not in meta:
        return None
    ms = meta["multiscales"]
    if not isinstance(ms, list) or not ms or not isinstance(ms[0], dict):
        raise InputError(path, "OME-NGFF 'multiscales' is empty or not a list of images")
    return meta


def _axis_names(path: str, ms: dict, axes: str | None) -> str:
    """The multiscale's axis letters; axes given as plain strings (NGFF 0.3) are accepted."""
    entries = ms.get("axes")
    if entries is None:
        if axes:
            return axes.lower()
        raise AxesUnknown(path, "OME-NGFF multiscales has no 'axes' (required since NGFF 0.4)")
    if not isinstance(entries, list) or not entries:
        raise InputError(path, "OME-NGFF 'axes' is not a list of axes")
    names = []
    for a in entries:
        name = a.get("name") if isinstance(a, dict) else a
        if not isinstance(name, str) or not name:
            raise InputError(path, f"OME-NGFF axis {a!r} has no name")
        names.append(name[0])
    return "".join(names).lower()


def _ngff_image(path: str, node, meta: dict, axes: str | None):
    """The full-resolution array, axes, scale and channel names of an NGFF image group."""
    ms = meta["multiscales"][0]
    file_axes = _axis_names(path, ms, axes)
    datasets = ms.get("datasets")
    if not isinstance(datasets, list) or not datasets or not isinstance(datasets[0], dict):
        raise InputError(path, "OME-NGFF multiscales has no 'datasets'")
    dataset = datasets[0]
    key = dataset.get("path")
    if not isinstance(key, str):
        raise InputError(path, "OME-NGFF dataset has no 'path'")
    try:
        array = node[key]
    except (KeyError, FileNotFoundError):
        raise InputError(
            path, f"OME-NGFF dataset path '{key}' names no array in the store"
        ) from None
    if not isinstance(array, zarr.Array):
        raise InputError(path, f"OME-NGFF dataset path '{key}' is a group, not an array")
    scale_list = [1.0] * len(file_axes)
    for t in dataset.get("coordinateTransformations") or []:
        if isinstance(t, dict) and t.get("type") == "scale":
            scale_list = t.get("scale") or scale_list
    if len(scale_list) != len(file_axes):
        raise InputError(path, f"OME-NGFF scale {scale_list} does not match the axes '{file_axes}'")
    try:
        scale = {a: float(s) for a, s in zip(file_axes, scale_list) if a in "zyx"}
    except (TypeError, ValueError):
        raise InputError(path, f"OME-NGFF scale {scale_list} is not a list of numbers") from None
    channels = (meta.get("omero") or {}).get("channels") or []
    names = [
        (ch.get("label") if isinstance(ch, dict) else None) or f"ch{i}"
        for i, ch in enumerate(channels)
    ]
    return key, array, file_axes, scale, [str(n) for n in names]


def _check_chunks(path: str, key: str, array: zarr.Array) -> None:
    """Refuse an array with chunk files missing inside its extent (unless allowed sparse)."""
    if os.environ.get(SPARSE_ENV) == "1":
        return
    hint = f"; if the store was written sparse on purpose, set {SPARSE_ENV}=1 to read gaps as zeros"
    try:  # zarr 3 internals name the missing chunk; the public count still detects it
        from zarr.core.array import _shards_initialized
        from zarr.core.sync import sync

        stored = set(sync(_shards_initialized(array._async_array)))
        expected = list(array._iter_shard_keys())
    except (ImportError, AttributeError):
        stored, expected = None, None
    if expected is None:
        missing = array.nchunks - array.nchunks_initialized
        if missing > 0:
            raise InputError(
                path, f"{missing} of {array.nchunks} chunks of array '{key}' are missing{hint}"
            )
        return
    missing = [k for k in expected if k not in stored]
    if missing:
        raise InputError(
            path,
            f"{len(missing)} of {len(expected)} chunk files of array '{key}' are missing (first: "
            f"'{key}/{missing[0]}'){hint}",
        )


def open_zarr(path: str, axes: str | None = None) -> ImageSource:
    try:
        node = zarr.open(path, mode="r")
    except Exception as err:
        raise InputError(path, f"not a readable Zarr store ({type(err).__name__}: {err})") from err
    meta = _ngff_meta(path, dict(node.attrs))
    if meta is not None:  # OME-Zarr image group
        if not isinstance(node, zarr.Group):
            raise InputError(path, "OME-NGFF metadata on an array, expected an image group")
        key, array, file_axes, scale, names = _ngff_image(path, node, meta, axes)
    elif isinstance(node, zarr.Array):
        key, array, scale, names = ".", node, {}, []
        attrs = dict(node.attrs)
        dims = getattr(node.metadata, "dimension_names", None) or attrs.get("_ARRAY_DIMENSIONS")
        file_axes = "".join(str(d)[0] for d in dims).lower() if dims else None
        if axes is None and file_axes is None:
            if node.ndim == 2:
                file_axes = "yx"
            else:
                raise AxesUnknown(
                    path,
                    f"ambiguous axis layout for a {node.ndim}-D Zarr array without dimension names",
                )
    else:
        raise InputError(path, "Zarr group without OME-NGFF multiscales metadata")
    axes = _check_axes(path, axes or file_axes, array.shape)
    _check_array(path, array.shape, array.dtype)
    _check_chunks(path, key, array)
    return ImageSource(str(path), array, axes, scale, names)
