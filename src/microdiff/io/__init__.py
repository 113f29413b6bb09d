"""Image input and output: lazy readers for every input format, NGFF (OME-Zarr) reading and
writing, segmentation stores read back as label layers."""

from .readers import ImageSource, open_image

__all__ = ["ImageSource", "open_image"]
