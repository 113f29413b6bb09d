"""Checks of the config against the experiment, run when the workflow is parsed.

The schema checks each key alone; these check what only the keys together with the images can
tell (a channel index beyond the image's channels, an unknown channel name, reversed
percentiles), so the mistake is reported before any job runs, naming the config key.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .errors import InputError


def _channel_names(samples: pd.DataFrame) -> tuple[list[str | None], str] | None:
    """The channel names of the first input that exists yet: the sheet's, else the file's;
    None for a channel whose name only ingest will give."""
    from .io.readers import open_image

    for row in samples.itertuples(index=False):
        if not Path(row.path).exists():
            continue
        src = open_image(row.path, row.axes, row.scene)
        if row.channels:
            names = [c.strip() for c in str(row.channels).split(",")]
        else:
            names = list(src.channel_names)
        n = src.shape[0]
        return names[:n] + [None] * (n - len(names[:n])), row.path
    return None


def _check_channel(key: str, channel, names: list[str], path: str) -> None:
    if isinstance(channel, bool) or channel is None:
        return
    if isinstance(channel, int):
        if not 0 <= channel < len(names):
            raise InputError(
                f"config: {key}",
                f"channel {channel} is out of range: {path} has {len(names)} channel(s) {names}",
            )
    elif None not in names and str(channel) not in names:
        raise InputError(
            f"config: {key}", f"no channel named {channel!r}: {path} has channels {names}"
        )


def check_config(config: dict, samples: pd.DataFrame) -> None:
    """Refuse a config that cannot work on these samples, naming the key."""
    low, high = config["normalize"]["percentiles"][:2]
    if not low < high:
        raise InputError(
            "config: normalize.percentiles",
            f"low {low} must be below high {high} (e.g. [1.0, 99.8])",
        )
    found = _channel_names(samples)
    if found is None:
        return
    names, path = found
    seg = config.get("segment") or {}
    if seg.get("enabled", True):
        _check_channel("segment.nuclei_channel", seg.get("nuclei_channel", 0), names, path)
        if "cells" in (seg.get("kinds") or []):
            _check_channel(
                "segment.cytoplasm_channel", seg.get("cytoplasm_channel", 1), names, path
            )
    gen = config.get("generate") or {}
    if gen.get("enabled"):
        for channel in gen.get("channels") or []:
            _check_channel("generate.channels", channel, names, path)
