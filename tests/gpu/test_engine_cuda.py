"""The diffusion engine on CUDA: bf16 training, sampling, and agreement with the CPU."""

import numpy as np
import torch

from microdiff.diffusion import build, karras_sigmas, pick_device, sample, train


class Blobs:
    """A toy patch source: Gaussian blobs on 32 x 32."""

    def sample(self, n, rng):
        yy, xx = np.mgrid[:32, :32]
        out = np.zeros((n, 1, 32, 32), np.float32)
        for i in range(n):
            cy, cx = rng.uniform(8, 24, 2)
            out[i, 0] = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 20.0) - 0.5
        return torch.from_numpy(out), None


def test_pick_device_prefers_cuda(cuda):
    assert pick_device().type == "cuda"


def test_bf16_training_lowers_loss_and_samples(cuda):
    den = build(1, width=16, depth=3)
    res = train(den, Blobs(), steps=200, batch=32, lr=2e-3, seed=0, device=cuda, progress=False)
    assert np.mean(res.losses[-20:]) < 0.5 * np.mean(res.losses[:20])
    d = res.denoiser.to(cuda)
    x = torch.randn(8, 1, 32, 32, device=cuda) * 80
    out = sample("dpmpp_2m", d, x, karras_sigmas(8).to(cuda))
    assert out.is_cuda and torch.isfinite(out).all()


def test_cuda_matches_cpu_in_fp32(cuda):
    torch.manual_seed(0)
    den = build(1, width=8, depth=2).eval()
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        cpu = den(x, 1.0)
        gpu = den.to(cuda)(x.to(cuda), 1.0).cpu()
    assert torch.allclose(cpu, gpu, atol=1e-4)
