"""The diffusion representation: a denoiser trained self-supervised on object crops, whose
pooled internal activations at chosen noise levels are each object's embedding.

Training needs no labels: every object's crop (labelled or not) is a training image for the
engine's one loop (EDM loss), with random flips, 90-degree rotations and a small per-channel
brightness/contrast jitter. The embedding of a crop x: for each noise level sigma_l, the crop
is noised with a fixed, seeded draw (x + sigma_l eps_l, the same eps for every crop, so an
object's embedding does not depend on its batch), passed once through D, and the output of every
encoder level, the middle block and every decoder level is averaged over three rings of the
crop: centre, middle and rim (`ring_pool`). With `views` > 1 the embedding is averaged over
that many dihedral views of the crop.
Cost: levels x views network evaluations (NFE) per object.

A light classifier on the embedding (alone, or joined with the morphology features and the
descriptors `crops.descriptors` derives from crop and table: ring profile, radial profile scaled
to the cell, sizes and intensities relative to the sample, outline harmonics, rim spectrum):
`light.fit_light`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from ..diffusion import Denoiser, UNet, build, load_checkpoint, pick_device, set_threads
from .crops import dihedral, hash_arrays, train_on_crops
from .light import fit_light, joined

log = logging.getLogger("microdiff.classify.represent")

TASK = "classify-representation"
SIGMAS = (0.1, 0.3)
JOINED = (
    "morphology features, the crop's ring and scaled radial profiles, sizes relative to the "
    "sample, outline and rim spectrum (`crops.descriptors`)"
)


def build_denoiser(channels: int, width: int = 16, depth: int = 3) -> Denoiser:
    """The unconditional EDM denoiser the representation comes from."""
    return build(channels, width=width, depth=depth)


class AugmentedCrops:
    """Training batches (x0, None): crops drawn uniformly, a random dihedral view each, and a
    per-channel jitter v -> a v + b (a in 1 +- `contrast`, b in +- `brightness`)."""

    def __init__(self, crops: np.ndarray, brightness: float = 0.05, contrast: float = 0.05):
        self.crops = torch.as_tensor(np.asarray(crops, np.float32))
        self.brightness, self.contrast = float(brightness), float(contrast)
        self.data_hash = hash_arrays(self.crops.numpy())

    def sample(self, n: int, rng: np.random.Generator):
        idx = rng.integers(0, len(self.crops), n)
        views = rng.integers(0, 8, n)
        x = torch.stack([dihedral(self.crops[i], int(v)) for i, v in zip(idx, views)])
        c = x.shape[1]
        a = 1.0 + rng.uniform(-self.contrast, self.contrast, (n, c, 1, 1))
        b = rng.uniform(-self.brightness, self.brightness, (n, c, 1, 1))
        return x * torch.as_tensor(a, dtype=torch.float32) + torch.as_tensor(
            b, dtype=torch.float32
        ), None


def train_representation(
    crops: np.ndarray,
    steps: int = 2000,
    batch: int = 32,
    lr: float = 2e-3,
    width: int = 16,
    depth: int = 3,
    seed: int = 0,
    checkpoint_path=None,
    threads: int | None = None,
    device=None,
    jitter: float = 0.05,
    extra: dict | None = None,
):
    """Train the denoiser on all crops (no labels); the engine's TrainResult."""
    torch.manual_seed(seed)
    den = build_denoiser(crops.shape[1], width, depth)
    config = {
        "task": TASK,
        **(extra or {}),
    }
    return train_on_crops(
        den,
        AugmentedCrops(crops, jitter, jitter),
        crops,
        config,
        steps,
        batch,
        lr,
        seed=seed,
        checkpoint_path=checkpoint_path,
        threads=threads,
        device=device,
    )


def load_representation(path, device="cpu") -> tuple[Denoiser, dict]:
    return load_checkpoint(path, device, task=TASK)


def _blocks(net: UNet) -> list[torch.nn.Module]:
    return [blocks[-1] for blocks in net.down] + [net.mid2] + [blocks[-1] for blocks in net.up]


RINGS = (0.35, 0.7)  # ring edges, as a share of the half-width: centre, middle, rim


def ring_pool(maps: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) block output -> (N, C * 3): each channel's mean over the centre disc, the
    middle ring and the rim of the crop (edges `RINGS`). A crop is centred on its object, so
    the rings keep where an activation is (a pale centre, a spiky rim), which a mean over the
    whole crop loses; they do not change under the dihedral views. A ring with no pixel (maps
    of 4 x 4 px or less, deep in a network on small crops) gives 0."""
    h, w = maps.shape[-2:]
    yy, xx = torch.meshgrid(
        torch.arange(h, device=maps.device) - (h - 1) / 2,
        torch.arange(w, device=maps.device) - (w - 1) / 2,
        indexing="ij",
    )
    ring = torch.bucketize(
        torch.hypot(yy, xx) / (min(h, w) / 2), torch.tensor(RINGS, device=maps.device), right=True
    )
    onehot = torch.nn.functional.one_hot(ring.reshape(-1), len(RINGS) + 1).to(maps.dtype)
    sums = maps.flatten(-2) @ onehot  # (N, C, rings)
    return (sums / onehot.sum(0).clamp(min=1)).transpose(1, 2).flatten(1)  # empty ring: 0


@torch.no_grad()
def embed(
    denoiser: Denoiser,
    crops: np.ndarray,
    sigmas: Sequence[float] = SIGMAS,
    views: int = 1,
    seed: int = 0,
    batch: int = 256,
    device=None,
    threads: int | None = None,
) -> np.ndarray:
    """(N, D) float32 embedding: block outputs pooled in rings (`ring_pool`) per noise level,
    levels concatenated, averaged over `views` dihedral views. NFE per object = len(sigmas) *
    views."""
    set_threads(threads)
    dev = pick_device(device or "auto")
    den = denoiser.to(dev).eval()
    pooled: list[torch.Tensor] = []
    hooks = [
        b.register_forward_hook(lambda m, i, o: pooled.append(ring_pool(o)))
        for b in _blocks(den.net)
    ]
    n, c, *shape = crops.shape
    gen = torch.Generator().manual_seed(int(seed))
    eps = torch.randn((len(sigmas), c, *shape), generator=gen).to(dev)
    out = []
    try:
        for start in range(0, n, batch):
            x = torch.as_tensor(crops[start : start + batch], dtype=torch.float32).to(dev)
            per_view = []
            for v in range(views):
                xv = dihedral(x, v)
                levels = []
                for li, s in enumerate(sigmas):
                    pooled.clear()
                    den(xv + float(s) * eps[li], float(s))
                    levels.append(torch.cat(pooled, dim=1))
                per_view.append(torch.cat(levels, dim=1))
            out.append(torch.stack(per_view).mean(0).cpu().numpy())
    finally:
        for h in hooks:
            h.remove()
    width = sum(b.conv2.out_channels for b in _blocks(den.net)) * len(sigmas) * (len(RINGS) + 1)
    return np.concatenate(out) if out else np.zeros((0, width), np.float32)


# -- an experiment's objects (the workflow's diffusion mode, method `representation`) ---------


def train_experiment(
    table, labels, images, norms, params: dict, checkpoint_path, seed: int = 0, threads=None
):
    """Train the representation on the crops of the experiment's objects, labelled or not.

    The labels play no part in training; the samples whose labels the classify stage holds out
    for its metrics are chosen here (as `lowest_error.train_experiment` does) and recorded in
    the checkpoint config, so the light classifier never sees them. At most `max_train` objects
    (a seeded subset) are training crops."""
    from .crops import crop_pool, experiment_crops, heldout_config, holdout_split, labelled

    lab = labelled(table, labels) if labels is not None else table.iloc[:0].assign(**{"class": ""})
    if labels is not None and lab.empty:
        raise ValueError("the diffusion classifier's labels match no object")
    test = np.zeros(len(lab), bool)
    if len(lab):  # without labels the embeddings are clustered: nothing to hold out
        _, test = holdout_split(
            lab["sample"].to_numpy(), lab["class"].to_numpy(), params.get("holdout", 0.25), seed
        )
    rows = table.reset_index(drop=True)
    cap = int(params.get("max_train", 20000))
    if len(rows) > cap:
        rows = rows.sample(cap, random_state=seed).reset_index(drop=True)
    size = int(params.get("crop", 32))
    pool = crop_pool(rows, size, params.get("pool", "auto"))
    crops = experiment_crops(rows, images, norms, size, pool)
    log.info("representation: %d crops of %d px, pooled from %d px (labels not used); %d "
             "labelled objects held out for the metrics", len(crops), size, size * pool,
             int(test.sum()))  # fmt: skip
    return train_representation(
        crops,
        steps=int(params.get("steps", 2000)),
        batch=int(params.get("batch", 32)),
        lr=float(params.get("lr", 2e-3)),
        width=int(params.get("width", 16)),
        depth=int(params.get("depth", 3)),
        seed=seed,
        checkpoint_path=checkpoint_path,
        threads=threads,
        extra={**heldout_config(lab, test), "pool": pool},
    )


def classify_experiment(
    table, labels, images, norms, checkpoint, params: dict, seed=0, threads=None
):
    """Every object of `table` classified from its embedding (joined with the morphology
    features and `crops.descriptors` when `params["join"]`); `(classes, info)`. When joined,
    the same light-classifier choice is made on the features and descriptors alone, and if
    they score higher on the validation objects the embedding is left out: `info` says so
    (`embedding_used`, the method names it non-diffusion) and so does the log.

    The light classifier learns from the labelled objects outside the held-out samples; C and
    the class weighting are chosen on a part of those (whole samples where there are several),
    the metrics are on the held-out ones (`cv: holdout`). Only the objects the light classifier
    learns from are embedded before that choice; the rest only when the embedding is used
    (`n_embedded`)."""
    import time

    import pandas as pd

    from .crops import descriptors, experiment_crops, holdout_split, labelled
    from .tabular import KEYS, feature_columns, scores

    den, cfg = load_representation(checkpoint, device=pick_device("auto"))
    rows = table.reset_index(drop=True)
    sigmas = tuple(float(s) for s in params.get("sigmas", SIGMAS))
    views = int(params.get("views", 1))
    pool = int(cfg.get("pool", 1))  # as the representation was trained
    crops = experiment_crops(rows, images, norms, int(cfg["crop_size"]), pool)
    E = None  # the embedding, filled in as it is needed (`embedded` marks the rows done)
    embedded = np.zeros(len(rows), bool)
    seconds = 0.0

    def embedding(need: np.ndarray) -> np.ndarray:
        nonlocal E, seconds
        todo = np.flatnonzero(need & ~embedded)
        start = time.perf_counter()
        new = embed(den, crops[todo], sigmas, views, seed, int(params.get("batch_eval", 256)),
                    None, threads)  # fmt: skip
        seconds += time.perf_counter() - start
        E = np.zeros((len(rows), new.shape[1]), np.float32) if E is None else E
        E[todo], embedded[todo] = new, True
        return E

    join = bool(params.get("join", True))
    plain = None  # the features and descriptors alone, the joined embedding's rival
    if join:  # the morphology features and what `descriptors` derives from crops and table
        F = rows[feature_columns(rows)].to_numpy(np.float64)
        plain = joined(
            np.zeros((len(rows), 0)), np.concatenate([F, descriptors(rows, crops, 1.0 / pool)], 1)
        )

    def features(E: np.ndarray, idx=slice(None)) -> np.ndarray:
        """The light classifier's columns for rows `idx`: their embedding, joined or not."""
        return E[idx] if plain is None else np.concatenate([E[idx], plain[idx]], axis=1)

    def cost() -> dict:
        n = int(embedded.sum())
        return {"sigmas": list(sigmas), "views": views, "nfe_per_object": len(sigmas) * views,
                "s_per_1000_objects": 1000 * seconds / max(n, 1), "n_embedded": n,
                "model_hash": cfg.get("params_hash")}  # fmt: skip

    if labels is None:
        X = features(embedding(np.ones(len(rows), bool)))
        return cluster_embeddings(rows, X, params.get("unsupervised") or {}, seed, join, cost())
    lab = labelled(rows.assign(_row=np.arange(len(rows))), labels)
    lab = lab.drop_duplicates(["sample", "id"])
    held = {(str(s), int(i)) for s, i in cfg.get("heldout", [])}
    is_test = np.array([(str(s), int(i)) in held for s, i in zip(lab["sample"], lab["id"])], bool)
    fit = lab[~is_test]
    if fit["class"].nunique() < 2:
        raise ValueError("the light classifier needs labelled objects of two or more classes "
                         "outside the held-out samples")  # fmt: skip
    _, val = holdout_split(fit["sample"].to_numpy(), fit["class"].to_numpy(), 0.25, seed + 1)
    # the choice needs the embedding of the objects it learns from only: the others are
    # embedded once it is known that the embedding is used
    fit_rows = fit["_row"].to_numpy()
    in_fit = np.zeros(len(rows), bool)
    in_fit[fit_rows] = True
    model, choice = fit_light(
        features(embedding(in_fit), fit_rows), fit["class"].to_numpy(), val, seed=seed,
        probability=True,
    )  # fmt: skip
    used = True
    if plain is not None:  # does the embedding earn its place? the same validation decides
        alt, alt_choice = fit_light(
            plain[fit_rows], fit["class"].to_numpy(), val, seed=seed, probability=True
        )
        with_f1, without_f1 = choice["validation_f1_macro"], alt_choice["validation_f1_macro"]
        if with_f1 is not None and without_f1 is not None and without_f1 > with_f1:
            used, model = False, alt
            choice = {**alt_choice, "validation_f1_macro_with_embedding": with_f1}
            log.warning("the diffusion embedding did not raise validation macro-F1 (%.3f with "
                        "it, %.3f without): classified from %s alone (non-diffusion); the "
                        "other %d objects were not embedded", with_f1, without_f1, JOINED,
                        len(rows) - int(in_fit.sum()))  # fmt: skip
    X = features(embedding(np.ones(len(rows), bool))) if used else plain
    classes = [str(c) for c in model.classes_]
    proba = model.predict_proba(X)
    keys = rows[[k for k in KEYS if k in rows.columns]]
    result = keys.assign(**{"class": np.asarray(classes, dtype=object)[proba.argmax(axis=1)]})
    result = pd.concat(
        [result, pd.DataFrame(proba, columns=[f"prob_{c}" for c in classes])], axis=1
    )
    test = lab[is_test]
    metrics = scores(test["class"], result["class"].to_numpy()[test["_row"]], classes)
    if used:
        method = f"diffusion representation (pooled denoiser activations) + {choice['model']}"
        method += f", joined with {JOINED}" if join else ""
    else:
        method = (f"{choice['model']} on {JOINED} (non-diffusion: the diffusion embedding did "
                  "not raise validation macro-F1)")  # fmt: skip
    info = {
        "mode": "diffusion",
        "method": method,
        "embedding_used": used,
        "cv": "holdout",
        "holdout": cfg.get("holdout"),
        **cost(),
        "light_classifier": choice,
        "n_test": int(len(test)),
        "n_labelled": int(len(lab)),
        "n_objects": int(len(rows)),
        "classes": classes,
        **metrics,
    }
    return result, info


def cluster_embeddings(rows, X: np.ndarray, unsupervised: dict, seed: int, join: bool, cost):
    """Without labels: a Gaussian mixture on the embeddings (as the `unsupervised` mode does on
    the features: standardised, PCA-reduced, k by lowest BIC in k_min..k_max unless `k`)."""
    import pandas as pd

    from .tabular import KEYS, cluster

    cols = [f"emb_{i}" for i in range(X.shape[1])]
    keys = rows[[k for k in KEYS if k in rows.columns]].reset_index(drop=True)
    table = pd.concat([keys, pd.DataFrame(X, columns=cols)], axis=1)
    k_range = (unsupervised.get("k_min", 2), unsupervised.get("k_max", 8))
    classes, info = cluster(table, k=unsupervised.get("k"), seed=seed, k_range=k_range,
                            columns=cols)  # fmt: skip
    info.pop("features", None)
    method = "diffusion representation (pooled denoiser activations) + Gaussian mixture"
    if join:
        method += f", joined with {JOINED}"
    head = {"mode": "diffusion", "method": method, "cv": "none (no labels: clusters)"}
    info = {**head, **cost, "n_objects": len(rows), **info}
    return classes, info
