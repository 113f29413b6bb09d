"""Cluster tests: the workflow through the SLURM executor plugin on a real local SLURM."""
