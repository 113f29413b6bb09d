"""Progressive distillation on an analytic teacher: the optimal denoiser of Gaussian data."""

import pytest
import torch
from torch import nn

from microdiff import diffusion as dm
from microdiff.diffusion.distill import distill, halve, teacher_target

SHAPE = (1, 4, 4)


class PixelAffine(nn.Module):
    """F(x, c_noise) = a(c_noise) x + b(c_noise) per pixel: the optimal denoiser of Gaussian
    data and DDIM steps over it are affine in x, so this network can be exact."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        n = torch.Size(SHAPE).numel()
        self.mlp = nn.Sequential(nn.Linear(1, 32), nn.SiLU(), nn.Linear(32, 2 * n))

    def forward(self, x, c_noise, cond=None):
        ab = self.mlp(c_noise.reshape(-1, 1)).view(x.shape[0], 2, *SHAPE)
        return ab[:, 0] * x + ab[:, 1]


def gaussian():
    g = torch.Generator().manual_seed(3)
    mean = torch.rand(SHAPE, generator=g) * 2 - 1
    var = 0.05 + 0.45 * torch.rand(SHAPE, generator=g)
    return dm.GaussianDenoiser(mean, var)


def test_halve_takes_every_other_sigma_and_needs_an_even_count():
    sig = dm.karras_sigmas(4, sigma_min=0.5, sigma_max=5.0)
    assert halve(sig).tolist() == [sig[0].item(), sig[2].item(), 0.0]
    with pytest.raises(ValueError):
        halve(dm.karras_sigmas(3))


def test_one_step_on_the_target_lands_where_two_teacher_steps_do():
    teacher = gaussian()
    x = torch.randn(6, *SHAPE) * 2
    s, m, t = 3.0, 1.0, 0.3
    two = dm.sample("ddim", teacher, x, torch.tensor([s, m, t]))
    b = [torch.full((6, 1, 1, 1), v) for v in (s, m, t)]
    x0 = teacher_target(teacher, x, *b)
    one = x0 + (t / s) * (x - x0)
    torch.testing.assert_close(one, two, atol=1e-5, rtol=1e-5)
    # at t = 0 the target is the teacher's two-step sample itself
    end = dm.sample("ddim", teacher, x, torch.tensor([s, m, 0.0]))
    torch.testing.assert_close(teacher_target(teacher, x, *b[:2], b[2] * 0), end)


def test_one_step_student_matches_the_two_step_teacher():
    teacher = gaussian()

    def source(n, rng):
        g = torch.Generator().manual_seed(int(rng.integers(2**31)))
        return teacher.sample(n, g), None

    sig = dm.karras_sigmas(2, sigma_min=0.5, sigma_max=5.0)
    student = dm.Denoiser(PixelAffine(), sigma_data=0.5)
    res = distill(teacher, source, sig, steps=300, batch=32, lr=1e-2, student=student)
    assert res.sigmas.tolist() == pytest.approx([5.0, 0.0])
    first, last = sum(res.losses[:20]) / 20, sum(res.losses[-20:]) / 20
    assert last < 0.05 * first
    x = dm.initial_noise(torch.Generator().manual_seed(9), (256, *SHAPE), 5.0)
    two = dm.sample("ddim", teacher, x, sig)  # teacher, 2 NFE
    one = dm.sample("ddim", teacher, x, res.sigmas)  # teacher, 1 NFE (no distillation)
    with torch.no_grad():
        stu = dm.sample("ddim", res.student, x, res.sigmas)  # student, 1 NFE
    err_student = (stu - two).pow(2).mean()
    err_teacher = (one - two).pow(2).mean()
    assert err_student < 0.05 * err_teacher
    # and in distribution: the student's samples spread like the two-step teacher's, so closer
    # to the data's variance than one teacher step (a posterior mean, nearly constant)
    var = teacher.vars[0].float()
    assert (stu.var(0) - two.var(0)).abs().mean() < 0.1 * (one.var(0) - two.var(0)).abs().mean()
    assert (stu.var(0) - var).abs().mean() < (one.var(0) - var).abs().mean()


def test_two_rounds_halve_twice_from_a_module_teacher():
    den = dm.Denoiser(PixelAffine(), sigma_data=0.5)
    teacher = gaussian()

    def source(n, rng):
        g = torch.Generator().manual_seed(int(rng.integers(2**31)))
        return teacher.sample(n, g), None

    sig = dm.karras_sigmas(4, sigma_min=0.5, sigma_max=5.0)
    res = distill(den, source, sig, steps=5, rounds=2, batch=4)
    assert res.sigmas.tolist() == pytest.approx([5.0, 0.0])
    assert len(res.losses) == 10 and res.config["schedules"][1] == halve(sig).tolist()
    before, after = den.state_dict().values(), res.student.state_dict().values()
    assert any(not torch.equal(a, b) for a, b in zip(before, after))
