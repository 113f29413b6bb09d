"""Physics-based synthetic microscopy with ground truth.

Makes the demo experiment (the default config needs no data from anywhere), test images and
benchmark data. One sample is a widefield-like image of a cell culture with a nuclear channel
(Hoechst-like) and a cytoplasmic channel, 2D (Y, X) or 3D (Z, Y, X):

- Cells grow in loose colonies. Each cell has one nucleus (an ellipse or ellipsoid with a wavy
  outline) and a cytoplasm territory grown outward from it (a reach-weighted Voronoi), so
  neighbouring cells touch. Nuclei may touch and overlap (dividing pairs are placed close on
  purpose).
- Phenotype classes differ in nuclear shape, intensity and texture (see `PHENOTYPES`): "round"
  nuclei are small, round, bright and smooth; "elongated" ones are larger, eccentric, dimmer and
  granular (bright chromocentre spots), and their cytoplasm is brighter, wider and punctate;
  "mitotic" (a third class, used when `classes=3`) are small, very bright and condensed.
- Optics and camera: fluorophore density -> Gaussian PSF blur -> plus a smooth additive
  background -> times an uneven illumination field (vignetting) -> Poisson photon noise ->
  camera gain, Gaussian read noise and offset -> rounding and clipping to uint16.

The units, exactly. Let `s` be the expected photon fraction of a pixel (about 1 inside a bright
round nucleus at the centre of the field). Then

    clean = offset + gain * photons * s                                (float32, camera counts)
    noisy = clip(round(offset + gain * Poisson(photons * s) + Normal(0, read_noise)), 0, 65535)

so `clean` is the mean of infinitely many noisy frames (up to rounding and clipping) and
`Var(noisy - clean) = gain * (clean - offset) + read_noise**2` (+ 1/12 from rounding).
`photons` is the peak photon count per pixel, `gain` counts per photon, `read_noise` and
`offset` are in counts.

Labels: object ids run 1..N in drawing order; where nuclei overlap, the later-drawn one (the
higher id) owns the shared pixels, while the fluorescence of both adds up there, as it does in a
real widefield image. Cell `i` contains nucleus `i` (same id); a nucleus completely covered by a
later one is dropped from the labels and the table. Cells are the pixels nearest to their
nucleus in units of each cell's reach (wide cells push into narrow neighbours), up to a wavy
per-cell reach. Cytoplasm brightness varies from cell to cell (touching cells differ) and a sixth
of the cells are dim.

`write_experiment` writes images, truth and a sample sheet; see its docstring for the layout.

image   `simulate_image`: the phenotypes, the sample's steps in order, its object table
cells   the culture's geometry: object layout, nuclei, cell territories, cytoplasm
optics  smooth random fields, point sources, PSF blur, background, illumination, camera noise
files   `write_sample`, `write_experiment`: images, truth and a sample sheet on disk
smear   simulated blood smears (RGB, stained red cells) with a points table
"""

from .files import sample_fractions, write_experiment, write_sample
from .image import CHANNELS, PHENOTYPES, Phenotype, Simulation, simulate_image

__all__ = [
    "CHANNELS",
    "PHENOTYPES",
    "Phenotype",
    "Simulation",
    "sample_fractions",
    "simulate_image",
    "write_experiment",
    "write_sample",
]
