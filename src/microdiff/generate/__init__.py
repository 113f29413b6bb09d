"""Diffusion-generated training data (the `generate` stage).

masks    new instance masks from the annotated objects (shapes, sizes, densities, placement)
model    the mask-conditioned (and class-conditioned) image model: training and sampling
stage    annotated pairs in; synthetic pairs (OME-Zarr) + manifest out; `read_pairs` for the
         segment trainer (which mixes them in: `segment.represent.MixedSource`)
realism  a real-vs-synthetic classifier's accuracy (0.5: indistinguishable)
figure   whole-image samples for the report
"""

from ..lazy import exports
from .realism import realism as realism  # eager: the name is also its submodule's (no torch)

_TABLE = {
    "Generator": "model",
    "Layout": "masks",
    "ObjectBank": "masks",
    "PairPatches": "model",
    "build": "model",
    "condition": "model",
    "contrast": "model",
    "examples": "stage",
    "generate_pairs": "stage",
    "load_annotated": "stage",
    "load_inputs": "stage",
    "read_pairs": "stage",
    "sample_layout": "masks",
    "synthesize": "model",
    "train_generator": "model",
    "train_stage": "stage",
    "transform_shape": "masks",
}
__all__ = sorted([*_TABLE, "realism"])
__getattr__ = exports(__name__, _TABLE)
