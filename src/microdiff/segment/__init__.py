"""Diffusion-based instance segmentation with uncertainty (the `segment` stage).

represent  labels -> (fg, dist) representation, training pairs, augmentation
model      conditional diffusion UNet: training, K-sample inference, probability/uncertainty
instances  seeded watershed, per-object consistency, stitching over tiles, cells from nuclei
stage      the stage over stores: shard jobs and the gather (NGFF labels + object table)
"""

from ..lazy import exports

_TABLE = {
    "KINDS": "represent",
    "Model": "model",
    "Params": "instances",
    "build": "model",
    "extract": "instances",
    "predict": "model",
    "representation": "represent",
    "stitch": "instances",
    "summarize": "model",
    "train_model": "model",
}
__all__ = sorted(_TABLE)
__getattr__ = exports(__name__, _TABLE)
