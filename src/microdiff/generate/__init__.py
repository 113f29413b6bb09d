"""Diffusion-generated training data (the `generate` stage).

masks    new instance masks from the annotated objects (shapes, sizes, densities, placement)
model    the mask-conditioned (and class-conditioned) image model: training and sampling
stage    annotated pairs in; synthetic pairs (OME-Zarr) + manifest out; `read_pairs` for the
         segment trainer; `MixedSource` to mix real and synthetic patches at a ratio
realism  a real-vs-synthetic classifier's accuracy (0.5: indistinguishable)
figure   whole-image samples for the report
"""

from .masks import Layout, ObjectBank, sample_layout, transform_shape
from .model import (
    Generator,
    PairPatches,
    build,
    condition,
    contrast,
    synthesize,
    train_generator,
)
from .realism import realism
from .stage import (
    MixedSource,
    examples,
    generate_pairs,
    load_annotated,
    manifest_provenance,
    read_pairs,
    train_stage,
)

__all__ = [
    "Generator",
    "Layout",
    "MixedSource",
    "ObjectBank",
    "PairPatches",
    "build",
    "condition",
    "contrast",
    "examples",
    "generate_pairs",
    "load_annotated",
    "manifest_provenance",
    "read_pairs",
    "realism",
    "sample_layout",
    "synthesize",
    "train_generator",
    "train_stage",
    "transform_shape",
]
