"""Train the shipped default restore model (src/microdiff/models/restore/).

    .venv/bin/python tools/train_default_restore.py [--steps 1500] [--threads 2]

Supervised on simulated noisy/clean pairs (`microdiff.simulate`, both channels, peak photons
3 to 300 so the model covers weak to mild noise), with the same loop, local network and
noise-level sampling as `train_restore`; the result is an engine checkpoint (config.json +
weights.pt, about 2 MB). Training on a user's data starts from it (fine-tune) when the width
and depth match, or `restore.train: false` uses it as is.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from microdiff.diffusion import save_checkpoint
from microdiff.restore.denoise import train_denoiser
from microdiff.restore.stage import DEFAULT_MODEL
from microdiff.restore.train import initial_model, pair_source
from microdiff.simulate import simulate_image

PHOTONS = (3, 10, 30, 100, 300)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(DEFAULT_MODEL))
    a = p.parse_args()
    pairs = []
    for i, photons in enumerate(PHOTONS):
        for seed in range(2):
            sim = simulate_image((256, 256), photons=photons, seed=100 + 10 * i + seed)
            pairs.append((sim.noisy.astype(np.float32), sim.clean.astype(np.float32)))
    training = {"width": 16, "depth": 3, "init": "none"}
    den, how = initial_model(training)
    source, noise = pair_source(pairs, 64)
    den, losses = train_denoiser(den, source, a.steps, batch=8, lr=1e-3, seed=0, p_exact=0.5,
                                 threads=a.threads)  # fmt: skip
    cfg = {
        "task": "restore",
        "mode": "supervised on simulated pairs (shipped default)",
        "init": how,
        "noise": noise.to_json(),
        "norm": "none: GroupNorm statistics removed, affine kept (a local network)",
        "training": {"steps": a.steps, "batch": 8, "patch": 64, "lr": 1e-3, "photons": PHOTONS},
        "final_loss": float(np.mean(losses[-50:])),
        "made_by": "tools/train_default_restore.py",
    }
    cfg = save_checkpoint(Path(a.out), den, cfg)
    print(f"wrote {a.out}: {cfg['params_hash']}, final loss {cfg['final_loss']:.4f}")


if __name__ == "__main__":
    main()
