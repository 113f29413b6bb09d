"""Inference speed, in one place for every stage: bf16 autocast, channels-last, optional
`torch.compile`, pinned-memory transfers and a batch size chosen from free GPU memory.

    den = prepare(den, device)          # the same weights, run the configured way
    x = to_device(array_or_tensor, device)
    n = batch_size("auto" | int, device, lambda: item_bytes(den, x_shape, cond_shape), default)

The settings come from the config's `gpu` section (`configure`) and apply on CUDA only. On a
CPU the network runs fp32 and eager, channels-last, one item per call (`CPU_BATCH`): measured
with the shipped models on 576 x 576 tiles (2 threads), the segment network takes 1.3 s/MP per
evaluation so against 2.9 s/MP contiguous at 4 tiles per call, the restore network 1.5 against
4.2 at 16 planes (larger batches spill the caches); torch.compile gains another third there but
costs about 30 s per process, so it stays off. Those numbers predate the UNet's fused inference
path (`unet.ResBlock._infer`), which takes the segment network's evaluation of a 576 x 576 tile
from about 0.71 to 0.51 CPU s (2 threads). Against that path torch.compile gains 4-10% (0.377
against 0.391-0.417 CPU s per evaluation of a 576 x 576 tile) for 25 s (wall) of compiling
per process and 14 s more per new tile shape, so it stays off on a CPU. A caller may ask for an
option explicitly (tests, benchmarks); autocast is never used on a CPU. Only the network runs in
bf16: the EDM preconditioning, the samplers and every output stay float32.
"""

from __future__ import annotations

import contextlib
import logging
import weakref

import torch
from torch import nn

from .precond import Denoiser

log = logging.getLogger("microdiff.diffusion")

DEFAULTS = {"bf16": True, "channels_last": True, "compile": False}
CPU = {"bf16": False, "channels_last": True, "compile": False}
CPU_BATCH = 1  # items (tiles, planes) per network call on a CPU when a stage's batch is "auto"
_settings = dict(DEFAULTS)
_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def configure(gpu: dict | None = None) -> dict:
    """Set this process's GPU settings from the config's `gpu` section (None: the defaults)."""
    unknown = set(gpu or {}) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown gpu settings {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    _settings.clear()
    _settings.update(DEFAULTS, **{k: bool(v) for k, v in (gpu or {}).items()})
    return dict(_settings)


def options(device, **overrides) -> dict:
    """The settings `prepare` uses on `device`: the configured ones on CUDA, `CPU` elsewhere;
    `overrides` (not None) win; bf16 is off on anything but CUDA."""
    cuda = torch.device(device).type == "cuda"
    opts = dict(_settings) if cuda else dict(CPU)
    opts.update({k: bool(v) for k, v in overrides.items() if v is not None})
    opts["bf16"] = opts["bf16"] and cuda
    return opts


def autocast(device, bf16: bool = True):
    """bf16 autocast on CUDA when `bf16`; a no-op context anywhere else."""
    if bf16 and torch.device(device).type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def memory_format(dims: int):
    return torch.channels_last_3d if dims == 3 else torch.channels_last


class Accelerated(nn.Module):
    """A network F(x, c_noise, cond) run under the chosen options; returns float32."""

    def __init__(self, net: nn.Module, bf16: bool, channels_last: bool, compile: bool):
        super().__init__()
        self.inner = net
        self.config = dict(getattr(net, "config", {}))
        self.multiple = getattr(net, "multiple", 1)
        self.bf16 = bf16
        self.format = memory_format(getattr(net, "dims", 2)) if channels_last else None
        if self.format is not None:
            net.to(memory_format=self.format)
        self.compiled = torch.compile(net) if compile else None

    def _run(self, x, c_noise, cond):
        if self.compiled is not None:
            try:
                return self.compiled(x, c_noise, cond)
            except Exception as e:  # noqa: BLE001 - a failed compile must not fail the stage
                log.warning("torch.compile failed (%s: %s); running eager", type(e).__name__, e)
                self.compiled = None
        return self.inner(x, c_noise, cond)

    def forward(self, x, c_noise, cond=None):
        if self.format is not None:
            x = x.contiguous(memory_format=self.format)
            if cond is not None:
                cond = cond.contiguous(memory_format=self.format)
        with autocast(x.device, self.bf16):
            out = self._run(x, c_noise, cond)
        return out.float().contiguous()


def prepare(den: Denoiser, device, bf16=None, channels_last=None, compile=None) -> Denoiser:
    """`den` on `device` in eval mode, its network run with `options(device, ...)`.

    Returns `den` itself when every option is off (or `den` is not a plain `Denoiser`), else a
    Denoiser sharing its weights (cached per model and options, so a compiled network is
    compiled once per process)."""
    dev = torch.device(device)
    den = den.to(dev).eval()
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # tiles share one shape: pick the fastest kernels
    if type(den) is not Denoiser or isinstance(den.net, Accelerated):
        return den  # another kind of denoiser (e.g. a test's oracle) runs as it is
    opts = options(dev, bf16=bf16, channels_last=channels_last, compile=compile)
    if not any(opts.values()):
        return den
    key = (str(dev), tuple(sorted(opts.items())))
    per_model = _cache.setdefault(den, {})
    if key not in per_model:
        fast = Denoiser(Accelerated(den.net, **opts), sigma_data=den.sigma_data)
        per_model[key] = fast.eval()
        log.info("network on %s with %s", dev, opts)
    return per_model[key]


def to_device(x, device) -> torch.Tensor:
    """A float32 tensor (from a tensor or an array) on `device`; host-to-GPU copies go through
    pinned memory without blocking (later work on the same stream waits for them)."""
    t = torch.as_tensor(x)
    if t.dtype == torch.float64:
        t = t.float()
    dev = torch.device(device)
    if dev.type == "cuda" and t.device.type == "cpu":
        return t.pin_memory().to(dev, non_blocking=True)
    return t.to(dev)


@torch.no_grad()
def item_bytes(den: Denoiser, x_shape, cond_shape=None) -> int:
    """Bytes of all layer outputs of one network call on one item of shape `x_shape` (C, ...)
    on the model's device: an estimate, above the peak (most outputs are freed before the
    next layer runs), of the activation memory one batch item needs."""
    dev = next(den.parameters()).device
    total = 0

    def hook(_module, _inputs, out):
        nonlocal total
        if isinstance(out, torch.Tensor):
            total += out.numel() * out.element_size()

    handles = [m.register_forward_hook(hook) for m in den.modules() if not list(m.children())]
    try:
        x = torch.zeros((1, *x_shape), device=dev)
        cond = None if cond_shape is None else torch.zeros((1, *cond_shape), device=dev)
        den(x, 1.0, cond)
    finally:
        for h in handles:
            h.remove()
    return int(total)


def auto_batch(
    device, per_item: int, default: int, free_bytes=None, share: float = 0.5, most: int = 256
) -> int:
    """Items per network call that fit in `share` of the free GPU memory (`free_bytes`, else
    measured by `torch.cuda.mem_get_info`), between 1 and `most`; `default` on a CPU."""
    dev = torch.device(device)
    if free_bytes is None:
        if dev.type != "cuda":
            return int(default)
        free_bytes = torch.cuda.mem_get_info(dev)[0]
    n = int(float(free_bytes) * share // max(int(per_item), 1))
    return max(1, min(n, int(most)))


def batch_size(value, device, per_item, default: int, most: int = 256) -> int:
    """A stage's `batch` setting as a number: an int as given; "auto" (or None) from free GPU
    memory (at most `most`), `per_item()` being called only then (on CUDA), and `default` on a
    CPU."""
    if value is None or value == "auto":
        if torch.device(device).type != "cuda":
            return int(default)
        return auto_batch(device, per_item(), default, most=most)
    n = int(value)
    if n < 1:
        raise ValueError(f"batch must be a positive integer or 'auto', not {value!r}")
    return n


def describe(device) -> dict:
    """What `prepare` does on `device` (for provenance)."""
    dev = torch.device(device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    return {"device": str(dev), "name": name, **options(dev)}
