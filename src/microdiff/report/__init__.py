"""Figures and pages of the experiment report (matplotlib, Agg): one function per picture.

Each `*_figure` function returns a matplotlib Figure; `save` writes it (PNG) atomically; the
`*_html`/`*_page` functions return a page that `write_text` writes. Images are read at a reduced
size (a pyramid level, then a stride) or as native-resolution windows, so a figure of a
whole-slide image costs about `max_px` squared pixels of memory, not the image.

- common: saving, NGFF reads (`read_small`, `read_window`), display stretch
- figures: normalization and noise, features by class, class counts, classifier metrics
- examples: example crops per class or cluster
- montage: per-sample full view and native-resolution crops with outlines and uncertainty
- plate: the plate heat map (one value per well)
- qc: the per-sample QC table with robust-z flags, its page and figure
- runtime: wall time per rule
- about: configuration, software versions and model hashes
"""

from .about import config_page, shipped_models, versions
from .common import (
    channel_index,
    pixel_size,
    plural,
    read_json,
    read_small,
    read_window,
    save,
    stretch,
    write_text,
)
from .examples import composite, examples_figure, pick_examples
from .figures import (
    FEATURES,
    class_counts_figure,
    feature_figure,
    metrics_figure,
    noise_curve,
    normalization_figure,
    pick_features,
)
from .montage import montage_figure, pick_crops
from .qc import RULE, THRESHOLD, qc_figure, qc_html, qc_table, robust_z, sample_qc
from .runtime import runtime_figure, runtime_table

__all__ = [
    "FEATURES",
    "RULE",
    "THRESHOLD",
    "channel_index",
    "class_counts_figure",
    "composite",
    "config_page",
    "examples_figure",
    "feature_figure",
    "metrics_figure",
    "montage_figure",
    "noise_curve",
    "normalization_figure",
    "pick_crops",
    "pick_examples",
    "pixel_size",
    "pick_features",
    "plural",
    "qc_figure",
    "qc_html",
    "qc_table",
    "read_json",
    "read_small",
    "read_window",
    "robust_z",
    "runtime_figure",
    "runtime_table",
    "sample_qc",
    "save",
    "shipped_models",
    "stretch",
    "versions",
    "write_text",
]
