"""microdiff: diffusion models for whole microscopy experiments.

The package knows nothing about Snakemake: every stage is a function over
(input store, parameters) -> output store, callable from the CLI, a script or a test.

Importing it asks OpenMP (torch's CPU ops, BLAS) to let idle worker threads sleep instead of
spin, unless `OMP_WAIT_POLICY` is already set: jobs share cores, and a spinning thread burns the
CPU another job needs. A segment job on two threads beside another job spent 17-21 CPU s per
520 x 696 sample spinning by default against 8-10 s passive, and took longer. The runtime reads
the variable once, when torch loads; each workflow job imports this package before torch.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
