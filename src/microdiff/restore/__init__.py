"""Restore: diffusion denoising (self-supervised or supervised) and super-resolution.

Method (self-supervised denoising, the default). Raw pixels follow a Poisson-Gaussian model,
Var[r] = a E[r] + b per channel, fitted to the noisy images themselves (`noise_model`: Foi et
al. 2008-style robust local mean/variance regression). The generalized Anscombe transform makes
the noise ~N(0, sigma^2) with a known sigma per channel after normalization. A diffusion
denoiser D(z, t) (the engine's EDM-preconditioned UNet; Karras et al. 2022) is trained on the
noisy data only, for every noise level t >= sigma: a training image y (noisy, level sigma) gets
extra noise s, z = y + s eps is the clean image x at level t = sqrt(sigma^2 + s^2), and since
the clean image is unknown the squared error |D(z, t) - x|^2 is replaced by Stein's unbiased
risk estimate

    SURE = |D(z, t) - z|^2 / N - t^2 + 2 t^2 div_z D(z, t) / N,

whose expectation equals the MSE to x (Stein 1981). This is GSURE-based diffusion training
from corrupted data (Kawar, Elata, Michaeli & Elad 2023, "GSURE-based diffusion model training
with corrupted data", TMLR) specialised to denoising; the divergence is a one-probe Monte-Carlo
estimate (Ramani, Blu & Unser 2008). The minimiser is D(z, t) = E[x | z] for every t >= sigma,
i.e. the model is a diffusion model of the clean images over the noise levels the data can
speak for (an ambient diffusion model; cf. Daras et al. 2023/2024).

SURE is only as good as the noise variance it is given: where the assumed variance exceeds the
true one the loss rewards a negative divergence without bound (E[SURE] = MSE + (sigma^2 -
sigma_true^2)(2 div/N - 1)). At low photon counts the GAT does not stabilize (its variance falls
well below 1 in the dark; W2S single frames hold a few photons per pixel), so the noise model
also measures the variance left after the GAT as a curve over the GAT value, and training uses
SURE with that known diagonal covariance (heteroscedastic SURE; the map is evaluated at the
local mean of each pixel's neighbours, without the pixel itself). The posterior mean is
unchanged; the posterior variance uses the same map, w_i dE[x_i|y]/dy_i.

Integer data. SURE needs y to have a density; camera data are integers, and on a grid the
divergence term can be gamed (8-bit FMD: the PSNR fell from 29.7 to 18.4 dB as training went
on). Integer-valued channels are therefore dithered before the GAT with Gaussian noise of half
a quantization step, drawn by global pixel position (seam-free), and the noise model is fitted
on the dithered data; the residual variance curve is capped at 1, since SURE with an
overestimated variance is unbounded below (`noise_model`).

Output. The posterior mean E[x | y] = D(y, sigma): Tweedie's formula at the data's own noise
level (Efron 2011), one network evaluation, mapped back through the inverse GAT (Makitalo & Foi
2011). The trained network is not the ideal minimiser at t = sigma itself, the edge of the
levels it was trained on, and under-smooths there; so the level at which it is evaluated, a
factor on sigma, is 1.5 for SURE-trained models and 1.25 for the shipped default fine-tuned by
SURE (measured on simulated images; `level`), or set by `inference.level`. With `samples: K > 1`
an uncertainty image is written too: the per-pixel posterior standard deviation from the
second-order Tweedie identity Cov[x | y] = sigma^2 dE[x|y]/dy, its Jacobian diagonal estimated
with K Rademacher probes (Hutchinson; K extra network evaluations) and lightly smoothed. This is
the quantity the standard deviation of K posterior samples estimates; we estimate it this way
because a model trained on noisy data only knows the levels t >= sigma, which a reverse
diffusion from y to 0 would have to go below.

Supervised mode: with noisy/clean pairs named in the config the same network is trained with
|D(z, t) - x|^2 instead of SURE (the supervised upper bound).

Whole images are processed tile-wise through the shard mechanism (`microdiff.shards`): each tile
is read with a halo wider than the UNet's receptive field, shifted onto a global 2^(depth-1)
pixel grid before the network so strided layers see the same pixel lattice whatever the tiling,
and all random draws are `PositionalNoise` (keyed by global pixel position). 3D images are
restored slice by slice (a 2D model over z).

noise_model  the Poisson-Gaussian noise model and its fit
denoise      the GAT (v domain), SURE, the denoiser's training loop and tiled posterior mean/std
train        the restore model: noise model fit and training (self-supervised or supervised)
stage        inference over stores: shard jobs, the gather, a whole image
superres*    super-resolution: the method, its stage, the rules' helpers
"""
