"""Inference loads a checkpoint once per process (`diffusion.load_shared`, issue 15): the
restore and segment stages of a batch job run sample after sample with one model."""

import os
import shutil

from microdiff.diffusion import checkpoint
from microdiff.restore import stage
from microdiff.segment.inputs import load_model
from microdiff.segment.model import Model
from microdiff.shipped import SEGMENT_NUCLEI


def test_loaded_once_and_again_when_replaced(tmp_path, monkeypatch):
    model = tmp_path / "model"
    shutil.copytree(stage.DEFAULT_MODEL, model)
    calls = []
    real = checkpoint.load_checkpoint
    monkeypatch.setattr(checkpoint, "load_checkpoint", lambda p, *a: calls.append(p) or real(p, *a))
    den, cfg = stage.inference_model(model)
    again, cfg2 = stage.inference_model(str(model))
    assert again is den and cfg2 == cfg and cfg2 is not cfg and len(calls) == 1
    cfg2["noise"] = None  # the caller's own copy
    assert stage.inference_model(model)[1]["noise"] is not None
    st = os.stat(model / "weights.pt")
    os.utime(model / "weights.pt", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    other, _ = stage.inference_model(model)
    assert other is not den and len(calls) == 2


def test_segment_inference_shares_its_models_and_training_does_not():
    a, b = load_model(SEGMENT_NUCLEI, "cpu"), load_model(str(SEGMENT_NUCLEI), "cpu")
    assert a.denoiser is b.denoiser and a.kinds == b.kinds
    own = Model.load(SEGMENT_NUCLEI, device="cpu")  # as training and distillation load
    assert own.denoiser is not a.denoiser


def test_at_most_a_few_checkpoints_are_kept(tmp_path):
    for i in range(checkpoint.SHARED_MAX + 2):
        shutil.copytree(stage.DEFAULT_MODEL, tmp_path / str(i))
        stage.inference_model(tmp_path / str(i))
    assert len(checkpoint._SHARED) <= checkpoint.SHARED_MAX
