"""Per-object classification (the `classify` stage).

tabular       feature tables: supervised gradient boosting, Gaussian-mixture clusters, summaries
labels        label tables (ids or points) matched to segmented objects
crops         object crops around centroids, normalised with the sample's statistics
represent     the diffusion representation: a denoiser trained self-supervised on crops, pooled
              activations at chosen noise levels as the object's embedding (torch)
lowest_error  the `diffusion` mode over an experiment (train_experiment, classify_experiment)

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
from .tabular import (
    KEYS,
    MODES,
    classification_table,
    classify_experiment,
    classify_objects,
    cluster,
    experiment_summary,
    feature_columns,
    load_model,
    predict,
    save_model,
    scores,
    spatial_ndim,
    summarize,
    train_supervised,
    write_classes,
)

__all__ = [
    "KEYS",
    "MODES",
    "classification_table",
    "classify_experiment",
    "classify_objects",
    "cluster",
    "demo_label_table",
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
