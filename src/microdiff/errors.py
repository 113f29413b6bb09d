"""Errors a user can act on: each names the file and the problem in one line."""

from __future__ import annotations


class InputError(ValueError):
    """Bad input: `str(err)` is a single line naming the file and what is wrong with it."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class AxesUnknown(InputError):
    """The file does not say its axis layout: the caller must give it.

    The message tells a workflow user to fill the sample sheet's `axes` column; the CLI, which
    takes `--axes` instead, says that (`for_cli`).
    """

    SHEET_HINT = "give the axes (for example 'cyx' or 'zyx') in the sample sheet's axes column"

    def __init__(self, path, problem: str):
        self.detail = problem
        super().__init__(path, f"{problem}: {self.SHEET_HINT}")

    def for_cli(self) -> str:
        return f"{self.path}: {self.detail}: give the axes with --axes (for example --axes cyx)"
