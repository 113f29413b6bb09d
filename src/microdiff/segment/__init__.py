"""Diffusion-based instance segmentation with uncertainty (the `segment` stage).

represent  labels -> (fg, dist) representation, training pairs, augmentation
model      conditional diffusion UNet: training, K-sample inference, probability/uncertainty
instances  seeded watershed, per-object consistency, stitching over tiles, cells from nuclei
stage      the stage over stores: shard jobs and the gather (NGFF labels + object table)
"""

from .instances import Params, extract, stitch
from .model import Model, build, predict, summarize, train_model
from .represent import KINDS, representation

__all__ = [
    "KINDS",
    "Model",
    "Params",
    "build",
    "extract",
    "predict",
    "representation",
    "stitch",
    "summarize",
    "train_model",
]
