"""Errors a user can act on: each names the file and the problem in one line."""

from __future__ import annotations


class InputError(ValueError):
    """Bad input: `str(err)` is a single line naming the file and what is wrong with it."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
