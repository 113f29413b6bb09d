"""Figures and pages of the experiment report (matplotlib, Agg): one function per picture.

Each `*_figure` function returns a matplotlib Figure; `save` writes it (PNG) atomically; the
`*_html`/`*_page` functions return a page that `write_text` writes. Images are read at a reduced
size (a pyramid level, then a stride) or as native-resolution windows, so a figure of a
whole-slide image costs about `max_px` squared pixels of memory, not the image.

- common: saving figures, NGFF reads (`read_small`, `read_window`), display stretch
- text: writing pages and tables, reading JSON
- figures: normalization and noise, features by class, class counts, classifier metrics
- examples: example crops per class or cluster
- montage: per-sample full view and native-resolution crops with outlines and uncertainty
- panel: pictures and colour bars drawn on a figure without an Axes each (the montage's panels)
- plate: the plate heat map (one value per well)
- qc: the per-sample QC table with robust-z flags, its page and figure
- runtime: wall time per rule
- about: configuration, software versions and model hashes
"""

from ..lazy import exports

# Names served from their submodule on first use: a rule that writes only a page (report_config)
# loads neither matplotlib nor the figure modules.
_TABLE = {
    "FEATURES": "figures",
    "RULE": "qc",
    "THRESHOLD": "qc",
    "channel_index": "common",
    "class_counts_figure": "figures",
    "composite": "examples",
    "config_page": "about",
    "curves_by_sample": "figures",
    "examples_figure": "examples",
    "feature_figure": "figures",
    "metrics_figure": "figures",
    "montage_figure": "montage",
    "noise_curve": "figures",
    "noise_curves_table": "figures",
    "normalization_figure": "figures",
    "pick_crops": "montage",
    "pick_examples": "examples",
    "pick_features": "figures",
    "pixel_size": "common",
    "plural": "common",
    "qc_figure": "qc",
    "qc_html": "qc",
    "qc_table": "qc",
    "read_json": "text",
    "read_small": "common",
    "read_small_channels": "common",
    "read_window": "common",
    "robust_z": "qc",
    "runtime_figure": "runtime",
    "runtime_table": "runtime",
    "sample_qc": "qc",
    "save": "common",
    "shipped_models": "about",
    "stretch": "common",
    "versions": "about",
    "write_text": "text",
}

__all__ = sorted(_TABLE)
__getattr__ = exports(__name__, _TABLE)
