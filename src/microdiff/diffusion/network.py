"""The engine's one network factory: every stage's denoiser is `build(...)`, an EDM-preconditioned
`UNet` (`precond.Denoiser`), and every checkpoint is rebuilt by `from_config`.

The network's options (the UNet's constructor arguments, `local` among them) are its `config`;
checkpoints record them as `architecture` and `sigma_data`, so a network saved local loads
local. Configs written before `local` was recorded lack the key: the loader's caller says how
such a network was used (`local=`; the restore, super-resolution and segment stages' networks
were all local).
"""

from __future__ import annotations

from .precond import Denoiser
from .unet import UNet


def build(
    in_channels: int = 1,
    cond_channels: int = 0,
    width: int = 32,
    depth: int = 3,
    sigma_data: float = 0.5,
    local: bool = False,
    **options,
) -> Denoiser:
    """A fresh denoiser: D(x, sigma, cond) around UNet(in_channels, cond_channels, width,
    depth, local=local, **options) (options: out_channels, blocks_per_level, dims, attention,
    channel_mult)."""
    net = UNet(
        in_channels=in_channels,
        cond_channels=cond_channels,
        width=width,
        depth=depth,
        local=local,
        **options,
    )
    return Denoiser(net, sigma_data=sigma_data)


def from_config(architecture: dict, sigma_data: float = 0.5, local: bool | None = None) -> Denoiser:
    """The denoiser a checkpoint's `architecture` describes; `local` applies only where the
    architecture predates the `local` key (None: not local)."""
    arch = dict(architecture)
    if "local" not in arch and local is not None:
        arch["local"] = local
    return Denoiser(UNet(**arch), sigma_data=sigma_data)
