"""The generate stage's library: mask sampler, conditional model, pairs on disk, realism."""

import numpy as np
import pandas as pd
import pytest
import torch
import zarr

from microdiff import diffusion as dm
from microdiff import generate as g
from microdiff.io import ngff
from microdiff.io.labels import validate_labels
from microdiff.normalize import percentile_norm
from microdiff.provenance import read_table_provenance
from microdiff.segment.represent import MixedSource, PairSource
from microdiff.simulate import simulate_image

SHAPE = (96, 128)


@pytest.fixture(scope="module")
def annotated():
    sims = [simulate_image(SHAPE, channels=("nuclei",), size=0.7, seed=s) for s in range(2)]
    return {
        "images": [percentile_norm(s.noisy.astype(np.float32)) for s in sims],
        "labels": [s.nuclei for s in sims],
        "classes": [dict(zip(s.objects["id"], s.objects["class"])) for s in sims],
        "channel_names": ["nuclei"],
    }


@pytest.fixture(scope="module")
def bank(annotated):
    return g.ObjectBank.from_labels(annotated["labels"], annotated["classes"])


@pytest.fixture(scope="module")
def model(annotated, tmp_path_factory):
    """A tiny class-conditional model, trained just enough to put objects where masks are."""
    dm.set_threads(1)
    out = tmp_path_factory.mktemp("gen") / "model"
    params = {"steps": 60, "batch": 4, "patch": 32, "width": 8, "depth": 2, "lr": 0.002}
    g.train_stage(annotated, out, params, threads=1, device="cpu")
    return g.Generator.load(out, device="cpu")


def test_bank_holds_whole_objects_and_densities(annotated, bank):
    assert bank.n_classes == 2 and set(bank.classes) <= {0, 1}
    assert len(bank.densities) == 2
    n0 = len(np.unique(annotated["labels"][0])) - 1
    assert bank.densities[0] == pytest.approx(n0 / np.prod(SHAPE))
    for m in bank.masks:  # tight crops
        assert m.dtype == bool and m[0].any() and m[-1].any() and m[:, 0].any() and m[:, -1].any()


def test_transformed_shapes_stay_in_observed_area_range(bank):
    rng = np.random.default_rng(0)
    lo, hi = bank.areas.min(), bank.areas.max()
    for m in bank.masks:
        a = g.transform_shape(m, rng, scale=(0.3, 3.0), area_range=(lo, hi)).sum()
        assert 0.8 * lo <= a <= 1.2 * hi


def test_layout_ids_dtype_overlap_and_density(bank):
    counts = []
    for s in range(20):
        lay = g.sample_layout(bank, (128, 128), np.random.default_rng(s))
        lab = lay.labels
        assert lab.dtype == np.int32 and lab.shape == (128, 128)
        ids = np.unique(lab[lab > 0])
        assert list(ids) == list(range(1, len(ids) + 1))  # consecutive, stable ids
        assert len(lay.classes) == len(ids) and set(lay.classes) <= {0, 1}
        counts.append(len(ids))
    expected = bank.densities.mean() * 128 * 128
    assert 0.5 * expected < np.mean(counts) < 1.3 * expected


def test_no_overlap_rule_keeps_objects_nearly_whole(bank):
    lay = g.sample_layout(bank, (128, 128), np.random.default_rng(3), density_scale=3.0)
    src_area = bank.areas[lay.sources]
    area = np.bincount(lay.labels.ravel())[1:]
    inner = [  # objects away from the border: all their pixels are theirs (no sharing)
        i for i in range(len(area)) if _away_from_border(lay.labels, i + 1)
    ]
    assert inner
    assert all(area[i] > 0.6 * src_area[i] for i in inner)


def _away_from_border(lab, i):
    ys, xs = np.nonzero(lab == i)
    return ys.min() > 0 and xs.min() > 0 and ys.max() < lab.shape[0] - 1 and xs.max() < 127


def test_layout_is_seeded(bank):
    a = g.sample_layout(bank, SHAPE, np.random.default_rng(5))
    b = g.sample_layout(bank, SHAPE, np.random.default_rng(5))
    c = g.sample_layout(bank, SHAPE, np.random.default_rng(6))
    assert np.array_equal(a.labels, b.labels) and np.array_equal(a.classes, b.classes)
    assert not np.array_equal(a.labels, c.labels)


def test_class_weights_pick_one_class(bank):
    lay = g.sample_layout(bank, SHAPE, np.random.default_rng(1), class_weights=[0.0, 1.0])
    assert len(lay.classes) and (lay.classes == 1).all()


def test_condition_planes(annotated):
    lab = annotated["labels"][0]
    n = int(lab.max())
    classes = [annotated["classes"][0].get(i, -1) for i in range(1, n + 1)]
    c = g.condition(lab, classes, n_classes=2)
    assert c.shape == (5, *SHAPE) and c.dtype == np.float32
    assert c.min() >= -1 and c.max() <= 1
    assert np.array_equal(c[0] > 0, lab > 0)
    assert ((c[1] > 0) <= (lab > 0)).all()  # boundaries lie on objects
    cl = np.array([-1, *classes])[lab]
    assert np.array_equal(c[3] > 0, cl == 0) and np.array_equal(c[4] > 0, cl == 1)


def test_generated_pairs_on_disk(model, annotated, tmp_path):
    params = {"pairs": 3, "shape": [64, 80], "steps": 6, "batch": 2, "seed": 4}
    table = g.generate_pairs(model, annotated, tmp_path / "pairs", tmp_path / "m.parquet", params)
    back = pd.read_parquet(tmp_path / "m.parquet")
    assert list(back["pair"]) == [0, 1, 2] and (back["height"] == 64).all()
    assert back["n_objects"].tolist() == table["n_objects"].tolist()
    prov = read_table_provenance(tmp_path / "m.parquet")
    assert prov["stage"] == "generate" and prov["model_hash"] == model.hash
    assert prov["params"]["seed"] == 4 and "diffusion" in prov["method"]
    for row in back.itertuples():
        store = tmp_path / row.path
        ngff.validate(store)
        assert validate_labels(store) == ["nuclei"]
        grp = zarr.open_group(str(store), mode="r")
        img, lab = grp["0"][...], grp["labels/nuclei/0"][...]
        assert img.shape == (1, 64, 80) and img.dtype == np.float32 and np.isfinite(img).all()
        assert lab.shape == (64, 80) and lab.dtype == np.int32
        assert int(lab.max()) == row.n_objects == len(row.classes)
        assert sum(row.class_counts) == row.n_objects
        props = grp["labels/nuclei"].attrs["image-label"]["properties"]
        assert [p["class"] for p in props] == list(row.classes)
        assert grp.attrs["microdiff"]["pair"] == row.pair
    images, labels = g.read_pairs(tmp_path / "m.parquet")
    assert len(images) == 3 and images[0].shape == (1, 64, 80) and labels[0][0].dtype == np.int32


def test_objects_where_the_mask_says(model, bank):
    lays = [g.sample_layout(bank, SHAPE, np.random.default_rng(s)) for s in range(3)]
    imgs = g.synthesize(model, [x.labels for x in lays], [x.classes for x in lays], steps=8)
    for img, lay in zip(imgs, lays):
        assert g.contrast(img, lay.labels) > 1.5
        other = np.roll(lay.labels, (SHAPE[0] // 2, SHAPE[1] // 2), axis=(0, 1))
        assert abs(g.contrast(img, other)) < g.contrast(img, lay.labels) / 2


def test_generation_is_seeded_and_batch_independent(model, annotated, tmp_path):
    def run(name, seed, batch):
        p = {"pairs": 3, "shape": [48, 64], "steps": 4, "batch": batch, "seed": seed}
        g.generate_pairs(model, annotated, tmp_path / name, tmp_path / f"{name}.parquet", p)
        return g.read_pairs(tmp_path / f"{name}.parquet")

    a, again, b, c = run("a", 1, 2), run("again", 1, 2), run("b", 1, 3), run("c", 2, 2)
    for x, y in zip(a[0] + [lab[0] for lab in a[1]], again[0] + [lab[0] for lab in again[1]]):
        assert np.array_equal(x, y)  # same seed, same everything: bit for bit
    for x, y, la, lb in zip(a[0], b[0], a[1], b[1]):  # another batching: same up to rounding
        assert np.array_equal(la[0], lb[0]) and np.allclose(x, y, atol=1e-4)
    assert not np.array_equal(a[1][0][0], c[1][0][0])
    assert not np.allclose(a[0][0], c[0][0], atol=0.05)


def test_examples_figure(model, annotated, tmp_path):
    out = g.examples(model, annotated, tmp_path / "ex.png", {"examples": 2, "steps": 3})
    assert out["class_conditional"] and (tmp_path / "ex.png").stat().st_size > 1000


def test_mixed_source_ratio(annotated):
    real = PairSource(annotated["images"], [[lab] for lab in annotated["labels"]], patch=32)
    fake = PairSource([np.full((1, 40, 40), 7.0, np.float32)], [[np.ones((40, 40), int)]], 32)
    src = MixedSource(real, fake, 0.25)
    _, cond = src.sample(400, np.random.default_rng(0))
    share = float((cond.flatten(1).mean(1) > 3).float().mean())
    assert 0.18 < share < 0.32
    assert MixedSource(real, fake, 0.0).sample(50, np.random.default_rng(0))[1].max() < 3
    with pytest.raises(ValueError):
        MixedSource(real, fake, 1.5)


def test_realism_tells_noise_from_images_but_not_images_from_themselves(annotated):
    rng = np.random.default_rng(0)
    imgs = annotated["images"]
    noise = [rng.normal(0.5, 0.3, i.shape).astype(np.float32) for i in imgs]
    far = g.realism(imgs, noise, crops=40, size=32, folds=4)
    same = g.realism(imgs, imgs, crops=40, size=32, folds=4, seed=1)
    assert far["accuracy"] > 0.9
    assert same["accuracy"] < 0.75


def test_wrong_checkpoint_is_refused(tmp_path):
    den = dm.build(1, 1, width=4, depth=1)
    dm.save_checkpoint(tmp_path / "ck", den, {"task": "segment"})
    with pytest.raises(ValueError, match="not a generate checkpoint"):
        g.Generator.load(tmp_path / "ck", device="cpu")
    assert torch.is_tensor(next(den.parameters()))


def test_command_line_trains_and_writes_pairs(tmp_path, capsys):
    from microdiff.cli import main
    from microdiff.simulate import write_experiment

    write_experiment(tmp_path / "d", n_samples=1, shape=SHAPE, size=0.7)
    (tmp_path / "d/pairs.tsv").write_text(
        "image\tnuclei\nimages/sample01.ome.tif\ttruth/sample01_nuclei.tif\n"
    )
    args = ["generate", str(tmp_path / "d/pairs.tsv"), str(tmp_path / "out"), "--model",
            str(tmp_path / "m"), "--channels", "nuclei", "--steps", "2", "--width", "8",
            "--patch", "32", "-n", "1", "--shape", "32", "48", "--sample-steps", "2"]  # fmt: skip
    assert main(args) == 0
    assert '"pairs": 1' in capsys.readouterr().out
    table = pd.read_parquet(tmp_path / "out/manifest.parquet")
    assert (tmp_path / "m/config.json").exists() and table["height"].tolist() == [32]
    assert main(["generate", str(tmp_path / "nope.tsv"), str(tmp_path / "o"), "--model", "m"]) == 2
