"""Per-object classification (the `classify` stage).

tabular       feature tables: supervised gradient boosting, Gaussian-mixture clusters
results       class summaries, the classes table, saved tabular models
labels        label tables (ids or points) matched to segmented objects
crops         object crops around centroids, normalised with the sample's statistics
represent     the diffusion representation: a denoiser trained self-supervised on crops, pooled
              activations at chosen noise levels as the object's embedding, and a light
              classifier on it (joined with the morphology features by default; torch)
              (the `diffusion` mode's default method)
light         the light classifier on embeddings and/or features (logistic or RBF SVM)
lowest_error  the class-conditional lowest-denoising-error rule (the other `diffusion` method)

Both diffusion methods offer `train_experiment` and `classify_experiment` over an experiment's
objects; `diffusion_method` picks one from the config's `classify.diffusion.method`.

The torch modules are imported on use
(`from microdiff.classify import lowest_error, represent`), so the feature modes run without torch.
"""

from .labels import (
    demo_label_table,
    label_images,
    match_points,
    object_labels,
    read_label_table,
    stage_labels,
)
from .results import experiment_summary, load_model, save_model, summarize, write_classes
from .tabular import (
    KEYS,
    MODES,
    classification_table,
    classify_experiment,
    classify_objects,
    cluster,
    feature_columns,
    predict,
    scores,
    spatial_ndim,
    train_supervised,
)

DIFFUSION_METHODS = ("representation", "lowest_error")


def diffusion_method(params):
    """The module of the `diffusion` mode's method (`method` in the config's `classify.diffusion`
    section, default `representation`); imported here, on use, because it needs torch."""
    method = (params or {}).get("method", "representation")
    if method == "representation":
        from . import represent

        return represent
    if method == "lowest_error":
        from . import lowest_error

        return lowest_error
    raise ValueError(f"classify.diffusion.method: {method!r} is not one of {DIFFUSION_METHODS}")


__all__ = [
    "DIFFUSION_METHODS",
    "KEYS",
    "MODES",
    "classification_table",
    "classify_experiment",
    "classify_objects",
    "cluster",
    "demo_label_table",
    "diffusion_method",
    "experiment_summary",
    "feature_columns",
    "label_images",
    "load_model",
    "match_points",
    "object_labels",
    "predict",
    "read_label_table",
    "save_model",
    "scores",
    "spatial_ndim",
    "stage_labels",
    "summarize",
    "train_supervised",
    "write_classes",
]
