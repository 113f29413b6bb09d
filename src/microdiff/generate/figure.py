"""Whole-image samples for inspection: generated images with their masks' outlines, a real
image beside them for comparison."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..atomic import atomic_output
from ..label_maps import inner_boundaries


def examples_figure(
    images: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    path,
    titles: Sequence[str] | None = None,
    real: tuple[np.ndarray, np.ndarray] | None = None,
) -> None:
    """A PNG: top row the images (channel 0, normalized units), bottom row the same with the
    mask outlines in red. `real` (image, labels) adds a first column."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = list(zip(images, labels, titles or [f"synthetic {i}" for i in range(len(images))]))
    if real is not None:
        cols = [(real[0], real[1], "real (annotated)"), *cols]
    fig, axes = plt.subplots(2, len(cols), figsize=(2.6 * len(cols), 5.4), squeeze=False)
    for j, (img, lab, title) in enumerate(cols):
        g = np.asarray(img, np.float32)
        g = g[0] if g.ndim == 3 else g
        g = np.clip(g, 0, 1)
        rgb = np.repeat(g[..., None], 3, -1)
        edge = inner_boundaries(lab)
        rgb[edge] = [1.0, 0.1, 0.1]
        axes[0, j].imshow(g, cmap="gray", vmin=0, vmax=1)
        axes[1, j].imshow(rgb)
        axes[0, j].set_title(title, fontsize=8)
        for ax in axes[:, j]:
            ax.set_axis_off()
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)
