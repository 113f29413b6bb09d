"""Image input and output: lazy readers for every input format, NGFF (OME-Zarr) writing."""

from .readers import ImageSource, open_image

__all__ = ["ImageSource", "open_image"]
