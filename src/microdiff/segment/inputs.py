"""What a segment shard job feeds its models: the models themselves, the normalized (or
colour-converted) view of the image they are conditioned on, and the image's `segment.scale`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import zarr

from .. import shipped
from ..io import ngff
from ..io.readers import resolve_channel
from ..normalize import Normalizer, level0
from . import instances, prepare, scale

if TYPE_CHECKING:  # the models need torch; the gather's NormalizedChannels does not
    from .model import Model

log = logging.getLogger("microdiff.segment")
PAD = 32  # mirrored context (pixels) around every tile, so image borders look alike however tiled
DEFAULT_MODEL = shipped.SEGMENT_NUCLEI


class NormalizedChannels:
    """Lazy (C', ...) view of an NGFF level 0: chosen channels, percentile-normalized."""

    def __init__(self, array, channels: Sequence[int], norm: Normalizer | None):
        self.array, self.channels, self.norm = array, list(channels), norm
        self.shape = (len(self.channels), *array.shape[1:])

    def __getitem__(self, index):
        block = np.stack([np.asarray(self.array[(c, *index[1:])]) for c in self.channels])
        block = block.astype(np.float32)
        if self.norm is not None:
            lo = self.norm.low[self.channels].reshape(-1, *[1] * (block.ndim - 1))
            hi = self.norm.high[self.channels].reshape(-1, *[1] * (block.ndim - 1))
            block = (block - lo) / (hi - lo)
        return block


def load_model(model, device) -> Model:
    from .model import Model

    return model if isinstance(model, Model) else Model.load(model, device=device, shared=True)


def models(model, cell_model, p: dict, device) -> tuple[Model, Model | None]:
    """The model, and the cell model where one runs beside it (`segment_shard`)."""
    model = load_model(model or DEFAULT_MODEL, device)
    cells = None
    if cell_model is not None and "cells" in p.get("kinds", []) and "cells" not in model.kinds:
        cells = load_model(cell_model, device)
        if cells.kinds != ("cells",) or cells.cond_channels not in (2, 3):
            raise ValueError(
                f"{cell_model}: a cell model makes cells from the nuclear and cytoplasm "
                "channels (2 condition channels) and optionally the nuclei found (3: the nuclei "
                f"model's mean foreground); this one makes {list(cells.kinds)} from "
                f"{cells.cond_channels}"
            )
    return model, cells


def source(image, model: Model, cells: Model | None, p: dict, norm_json):
    """The lazy normalized view the models are conditioned on (an RGB image's nuclear channel
    by `segment.prepare`), and the colour conversion (None where there is none)."""
    group = zarr.open_group(str(image), mode="r")
    names = ngff.channel_labels(group.attrs)
    chans = [resolve_channel(names, p.get("nuclei_channel", 0))]
    if model.cond_channels == 2 or cells is not None:
        chans.append(resolve_channel(names, p.get("cytoplasm_channel", 1)))
    if model.cond_channels not in (1, 2):
        raise ValueError(f"model needs {model.cond_channels} condition channels")
    norm = Normalizer.from_json(norm_json) if norm_json else None
    colour = None
    if model.cond_channels == 1 and cells is None:  # RGB: a nuclear channel (segment.prepare)
        colour = prepare.stage_conversion(group, names, p.get("nuclei_channel", 0))
    if colour is not None:
        log.info("RGB image: nuclear channel by %s", colour.method)
        return prepare.NuclearView(level0(group, norm), colour), colour
    return NormalizedChannels(level0(group, norm), chans, norm), None


def estimate_scale(model: Model, source, p: dict) -> scale.Scale:
    sampler, seed = p.get("sampler", "ddim"), int(p.get("seed", 0))
    params = instances.Params.from_config(p)
    return scale.estimate(model, source, p.get("scale", 1), params, sampler, seed, PAD)


def image_scale(image, model, params: dict | None = None, norm_json=None, cell_model=None,
                device: str = "auto") -> scale.Scale:  # fmt: skip
    """The image's `segment.scale`, as each of its `segment_shard` jobs would find it (they
    find the same: the same crop and seed), once for all of them."""
    p = dict(params or {})
    model, cells = models(model, cell_model, p, device)
    return estimate_scale(model, source(image, model, cells, p, norm_json)[0], p)
