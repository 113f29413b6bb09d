"""Per-object feature tables (the `features` stage), computed tile-wise with memory bounded by
tile and object size.

table    the tiled passes over one label image: object boxes, then one row per object
measure  the measurements: shape and neighbours per object; intensity, texture and uncertainty of
         a block's objects at once (`block_stats`)
sample   one sample's stores: the label layers of a segmentation (`io.segmentation`), measured
         on its images

Conventions of the output (one row per object, sorted by `id`):

- Positions are in pixel (voxel) index coordinates of the label image: `centroid_{z,y,x}`, and
  the half-open box `bbox_{z,y,x}0` / `bbox_{z,y,x}1`. `touches_border` is true when the box
  meets the image edge (the object may be cut by the field of view).
- Shape columns are in pixel units and say so: `area_px` (2D) or `volume_px` (3D) is the pixel
  count; `perimeter_px`, `axis_major_px`, `axis_minor_px`, `diameter_px` (equivalent diameter)
  are lengths in pixels. `eccentricity` and `solidity` have no unit.
- Physical columns are always present and NaN without `pixel_size`: `area_um2` / `volume_um3`,
  `centroid_{a}_um`, and the lengths `perimeter_um`, `axis_major_um`, `axis_minor_um`,
  `diameter_um`. Perimeter (2D) needs square pixels; axis lengths of anisotropic voxels come
  from moments computed with the voxel spacing.
- 3D: `perimeter_*` and `eccentricity` are undefined and NaN. Solidity of an object whose voxels
  are coplanar is NaN.
- Per channel `ch`: `intensity_{mean,median,std,min,max,integrated}_{ch}` (std with ddof=0,
  integrated = sum over the object's pixels) and Haralick statistics
  `texture_{contrast,dissimilarity,homogeneity,energy,correlation,asm}_{ch}` from a grey-level
  co-occurrence matrix at distance 1, averaged over the four in-plane directions (0, 45, 90,
  135 degrees; symmetric). Only pairs of pixels both inside the object count. Intensities are
  quantised to `texture_levels` levels over the object's own min..max, so texture describes the
  pattern, not the brightness (the intensity columns carry that). In 3D the matrices of all
  z-planes are summed (in-plane texture). Objects without any pixel pair are NaN.
- `neighbors`: how many other objects have a pixel within Euclidean distance `neighbor_distance`
  (pixels) of the object; 1 means touching (edge contact), the default 2 allows a 1-px gap.
- Segmentation uncertainty: `uncertainty_mean` / `uncertainty_max` of the per-pixel uncertainty
  image over the object, `uncertainty_object` from the per-object table; NaN when not given.
"""

from ..lazy import exports

# Names served from their submodule on first use: features_experiment, which only joins the
# samples' tables, loads neither scipy nor the image stores.
_TABLE = {
    "experiment_table": "experiment",
    "measure_sample": "sample",
    "object_bboxes": "table",
    "object_table": "table",
    "texture": "measure",
}

__all__ = sorted(_TABLE)
__getattr__ = exports(__name__, _TABLE)
