"""Reading a segmentation store (the segment stage's NGFF image with its `labels/`): each label
layer and its per-pixel uncertainty as lazy views, read tile by tile by whoever measures them."""

from __future__ import annotations

import numpy as np

from ..tiling import chunks_of
from . import ngff

#: NGFF label group name -> the `kind` written in the objects table
LABEL_KINDS = {"nuclei": "nucleus", "cells": "cell"}
UNCERTAINTY_SUFFIXES = ("_std", "_uncertainty", "_entropy")


class _View:
    """A lazy view of an array: fixed leading indices (a channel, a singleton axis) dropped."""

    def __init__(self, array, lead: tuple[int, ...] = ()):
        self.array, self.lead = array, tuple(lead)
        self.shape = tuple(array.shape[len(self.lead) :])
        self.ndim, self.dtype = len(self.shape), array.dtype
        chunks = chunks_of(array)
        self.chunks = None if chunks is None else chunks[len(self.lead) :]

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        return np.asarray(self.array[self.lead + key])


def _label_view(array, ndim: int) -> _View:
    """Instance labels as ([Z,] Y, X): leading singleton axes (a channel axis) squeezed."""
    lead = []
    while len(array.shape) - len(lead) > ndim:
        if array.shape[len(lead)] != 1:
            raise ValueError(f"labels of shape {array.shape} for a {ndim}-D image")
        lead.append(0)
    return _View(array, tuple(lead))


def label_names(group) -> list[str]:
    """The label images listed under an NGFF image group's `labels/` ([] without labels)."""
    if "labels" not in group:
        return []
    return list(ngff.metadata(group["labels"].attrs).get("labels", []))


def segmentation_layers(path, ndim: int) -> dict[str, dict]:
    """Label name -> {labels, uncertainty} (lazy views) of a segmentation store.

    Labels come from the NGFF `labels` group (level 0 of each; a leading singleton axis is
    squeezed). The per-pixel uncertainty of `nuclei` is the image channel labelled
    `nuclei_std` (or `_uncertainty`, `_entropy`); None when the store has none.
    """
    import zarr

    root = zarr.open_group(str(path), mode="r")
    channels, image = [], None
    if "multiscales" in ngff.metadata(root.attrs):
        image = ngff.level0(root)
        channels = ngff.channel_labels(root.attrs)
    out = {}
    for name in label_names(root):
        lab = _label_view(ngff.level0(root["labels"][name]), ndim)
        unc = None
        for suffix in UNCERTAINTY_SUFFIXES:
            if f"{name}{suffix}" in channels:
                unc = _View(image, (channels.index(f"{name}{suffix}"),))
                break
        if unc is not None and unc.shape != lab.shape:
            unc = _label_view(unc, ndim)
        out[name] = {"labels": lab, "uncertainty": unc}
    return out
