"""Lazy package exports: a stage package's names are imported from their submodule on first use.

Snakemake imports the stage packages while it parses the workflow; importing them must not pull
in torch (seconds per `snakemake` start, and per dry run), only the module that needs it does.
"""

from __future__ import annotations

import importlib


def exports(package: str, table: dict[str, str]):
    """A module `__getattr__` for `package` serving `name` from `package.<table[name]>`."""

    def __getattr__(name: str):
        if name not in table:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{table[name]}"), name)

    return __getattr__
