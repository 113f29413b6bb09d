"""A checkpoint's recorded config (`<path>/config.json`), read without torch.

Jobs that only need what a model recorded (a gather's provenance: its hash, mode, noise model,
level) read it here and never import the network; `diffusion.checkpoint` writes and loads the
whole checkpoint (weights included) and reads its config with this same function.
"""

from __future__ import annotations

import json
from pathlib import Path

FORMAT = "microdiff.checkpoint/1"
CONFIG = "config.json"


def read_config(path) -> dict:
    f = Path(path) / CONFIG
    if not f.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: {f} is missing")
    try:
        cfg = json.loads(f.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{f}: not valid JSON ({e})") from e
    if cfg.get("format") != FORMAT or "architecture" not in cfg:
        raise ValueError(f"{f}: not a microdiff checkpoint config (format {cfg.get('format')!r})")
    return cfg
