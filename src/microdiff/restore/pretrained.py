"""The restore model when `restore.train` is false and the default is the shipped model: its
files as they are, with this experiment's noise model in the config, written without torch.

`train_restore` makes the same model by loading the checkpoint into a network and saving it
again (about 1 s of torch import for a copy): the weights file it writes is the shipped file
byte for byte, and the config the shipped architecture with `local` recorded (a restore network
is local), its `sigma_data` and `params_hash` (the hash of the same weights). The unit tests
hold the two ways to the same files (issue 15).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

from .. import __version__, shipped
from ..atomic import atomic_output
from ..model_config import CONFIG, FORMAT, read_config
from .level import recorded_level
from .noise_fit import experiment_noise, restore_config

log = logging.getLogger("microdiff.restore")
WEIGHTS = "weights.pt"  # diffusion.checkpoint.WEIGHTS (that module imports torch)


def copies(params: dict, default) -> bool:
    """Whether `restore_as_is` makes this model: no training, the shipped default, which
    records its weights' hash."""
    if params.get("train", True) or Path(default).resolve() != Path(shipped.RESTORE).resolve():
        return False
    return bool(read_config(default).get("params_hash"))


def restore_as_is(
    stores: Sequence, norm_paths: Sequence, params: dict, out, default=shipped.RESTORE
) -> dict:
    """`train_restore` with train false and the shipped default (`copies`): the noise model
    fitted to the experiment, the default's weights copied; the config written (returned)."""
    norms, arrays, noise = experiment_noise(stores, norm_paths, params["training"])
    log.info("noise model (Var = a E + b per channel): %s", noise.to_json())
    base = read_config(default)
    how = f"shipped default as is ({base['params_hash']})"
    level = recorded_level(self_supervised=False)
    cfg = restore_config(stores, noise, params, "pretrained", how, level, [])
    # what save_checkpoint adds, as the loaded network reports it
    cfg.update(
        format=FORMAT,
        architecture={"local": True, **base["architecture"]},  # a recorded value wins
        sigma_data=float(base.get("sigma_data", 0.5)),
        data_hash=cfg.get("data_hash"),
        params_hash=base["params_hash"],
        microdiff_version=__version__,
        created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    )
    cfg = json.loads(json.dumps(cfg, default=str))
    with atomic_output(out) as tmp:
        tmp.mkdir(parents=True)
        shutil.copyfile(Path(default) / WEIGHTS, tmp / WEIGHTS)
        (tmp / CONFIG).write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    return cfg
