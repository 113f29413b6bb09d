"""microdiff: diffusion models for whole microscopy experiments.

The package knows nothing about Snakemake: every stage is a function over
(input store, parameters) -> output store, callable from the CLI, a script or a test.
"""

__version__ = "0.1.0"
