"""Checkpoints: a directory holding a state_dict and a JSON config; never pickled code.

    <path>/config.json      architecture (UNet kwargs, `local` among them), sigma_data,
                            data_hash, params_hash, microdiff_version, created, plus the
                            caller's entries
    <path>/weights.pt       torch.save of the Denoiser's state_dict (tensors only)
    <path>/train_state.pt   optional: raw weights, optimizer state, step, ... (for resuming)

The directory is written atomically (a temporary sibling renamed on success). Loading uses
`torch.load(weights_only=True)`, rebuilds the network from the JSON and checks that the weights'
keys, shapes and hash match the config; any mismatch is a ValueError naming the file.
"""

from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import json
from pathlib import Path

import torch

from .. import __version__
from ..atomic import atomic_output
from ..model_config import CONFIG, FORMAT, read_config
from .network import from_config
from .precond import Denoiser

WEIGHTS, TRAIN_STATE = "weights.pt", "train_state.pt"


def params_hash(state_dict: dict) -> str:
    """sha256 (16 hex digits) over the sorted names, dtypes, shapes and bytes of the tensors."""
    h = hashlib.sha256()
    for k in sorted(state_dict):
        t = state_dict[k].detach().cpu().contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def save_checkpoint(
    path, denoiser: Denoiser, config: dict | None = None, extra_state: dict | None = None
) -> dict:
    """Write `denoiser` (and optionally `extra_state`) to the directory `path`; returns the
    config written. `config` entries (task, data_hash, training parameters, ...) are kept."""
    state = {k: v.detach().cpu().clone() for k, v in denoiser.state_dict().items()}
    cfg = dict(config or {})
    cfg.update(
        format=FORMAT,
        architecture=dict(denoiser.net.config),
        sigma_data=denoiser.sigma_data,
        data_hash=cfg.get("data_hash"),
        params_hash=params_hash(state),
        microdiff_version=__version__,
        created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    )
    cfg = json.loads(json.dumps(cfg, default=str))
    with atomic_output(path) as tmp:
        tmp.mkdir(parents=True)
        torch.save(state, tmp / WEIGHTS)
        if extra_state is not None:
            torch.save(extra_state, tmp / TRAIN_STATE)
        (tmp / CONFIG).write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    return cfg


def _mismatch(model_state: dict, state: dict) -> list[str]:
    problems = []
    missing = sorted(set(model_state) - set(state))
    extra = sorted(set(state) - set(model_state))
    if missing:
        problems.append(f"missing {len(missing)} keys (e.g. {missing[:3]})")
    if extra:
        problems.append(f"{len(extra)} unexpected keys (e.g. {extra[:3]})")
    for k in sorted(set(model_state) & set(state)):
        if tuple(model_state[k].shape) != tuple(state[k].shape):
            problems.append(
                f"{k}: shape {tuple(state[k].shape)} in the file, "
                f"{tuple(model_state[k].shape)} from the config"
            )
            if len(problems) > 5:
                break
    return problems


def load_checkpoint(
    path, device="cpu", local: bool | None = None, task: str | None = None
) -> tuple[Denoiser, dict]:
    """Rebuild the denoiser from `<path>/config.json` (`network.from_config`) and load
    `<path>/weights.pt` into it. `local`: whether the network is local when the config predates
    the `local` key (a recorded value always wins). `task`: refuse a checkpoint of another task."""
    path = Path(path)
    cfg = read_config(path)
    if task is not None and cfg.get("task") != task:
        raise ValueError(f"{path}: not a {task} checkpoint (task {cfg.get('task')!r})")
    try:
        den = from_config(cfg["architecture"], cfg.get("sigma_data", 0.5), local)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path / CONFIG}: architecture cannot be built: {e}") from e
    wfile = path / WEIGHTS
    if not wfile.is_file():
        raise FileNotFoundError(f"checkpoint {path}: {wfile} is missing")
    state = torch.load(wfile, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{wfile}: expected a state_dict, found {type(state).__name__}")
    problems = _mismatch(den.state_dict(), state)
    if problems:
        raise ValueError(
            f"{wfile} does not match the architecture in {path / CONFIG}: " + "; ".join(problems)
        )
    want = cfg.get("params_hash")
    if want and params_hash(state) != want:
        raise ValueError(
            f"{wfile}: weights hash {params_hash(state)} differs from params_hash "
            f"{want} in {path / CONFIG} (file corrupt or replaced)"
        )
    den.load_state_dict(state)
    return den.to(device).eval(), cfg


_SHARED: dict = {}  # checkpoints `load_shared` loaded, by path, files' stamps and arguments
SHARED_MAX = 4  # a stage runs one or two models (segment: nuclei and cells)


def load_shared(
    path, device="cpu", local: bool | None = None, task: str | None = None
) -> tuple[Denoiser, dict]:
    """`load_checkpoint` for inference, once per process for one checkpoint: a batch job runs
    sample after sample with the same model, and rebuilding and hash-checking it per sample was
    CPU time spent for nothing (issue 15). Keyed by the path, the size and mtime of its config
    and weights (a replaced checkpoint is loaded anew) and the arguments; the last SHARED_MAX
    are kept. The network is shared: never train it (training loads its own with
    `load_checkpoint`). The config is the caller's own copy."""
    p = Path(path).resolve()
    stamps = []
    for name in (CONFIG, WEIGHTS):
        try:
            st = (p / name).stat()
        except OSError:
            return load_checkpoint(path, device, local, task)  # it says what is missing
        stamps.append((st.st_size, st.st_mtime_ns))
    key = (str(p), *stamps, str(device), local, task)
    if key not in _SHARED:
        while len(_SHARED) >= SHARED_MAX:
            _SHARED.pop(next(iter(_SHARED)))
        _SHARED[key] = load_checkpoint(p, device, local, task)
    den, cfg = _SHARED[key]
    return den, copy.deepcopy(cfg)


def load_train_state(path, device="cpu") -> dict | None:
    """The training state saved with a checkpoint, or None if it has none."""
    f = Path(path) / TRAIN_STATE
    if not f.is_file():
        return None
    return torch.load(f, map_location=device, weights_only=True)
