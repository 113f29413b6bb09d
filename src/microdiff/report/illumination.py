"""The report's figure of the illumination stage: each channel's flat-field and dark-field."""

from __future__ import annotations

import numpy as np
import zarr

from ..io import ngff
from .common import plt


def profiles_figure(path):
    """One row per channel: flat-field (mean 1) and dark-field (raw units), with colour bars."""
    group = zarr.open_group(str(path), mode="r")
    data = np.asarray(ngff.level0(group)[...], np.float32)
    labels = ngff.channel_labels(group.attrs)
    n = data.shape[0] // 2
    fig, axes = plt.subplots(n, 2, figsize=(7, 3.2 * n), squeeze=False)
    for c in range(n):
        for j, what in enumerate(("flat-field", "dark-field")):
            ax = axes[c, j]
            im = ax.imshow(data[c + j * n], cmap="magma")
            ax.set_title(f"{labels[c].split(':', 1)[1]}: {what}")
            ax.set_axis_off()
            fig.colorbar(im, ax=ax, fraction=0.046)
    prov = group.attrs.get("microdiff", {})
    fig.suptitle(f"illumination profiles ({prov.get('images', '?')} images, BaSiC)")
    return fig
