"""Device and thread choice: CUDA when present, else CPU; threads follow the rule's `threads`."""

from __future__ import annotations

import torch


def pick_device(prefer: str = "auto") -> torch.device:
    """'auto' -> cuda if available else cpu; 'cpu' / 'cuda' / 'cuda:1' are taken as given
    (asking for CUDA without it is an error)."""
    if prefer in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(prefer)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {prefer!r} requested but CUDA is not available")
    return dev


def set_threads(n: int | None) -> None:
    """Set torch's intra-op thread count (a rule's `threads`); None leaves it alone."""
    if n is not None:
        torch.set_num_threads(max(1, int(n)))
