"""The restore stage loads a checkpoint once per process for inference (issue 15)."""

import os
import shutil

from microdiff.restore import stage


def test_inference_model_loaded_once_and_again_when_replaced(tmp_path, monkeypatch):
    model = tmp_path / "model"
    shutil.copytree(stage.DEFAULT_MODEL, model)
    calls = []
    real = stage.load_model
    monkeypatch.setattr(stage, "load_model", lambda p: calls.append(p) or real(p))
    den, cfg = stage.inference_model(model)
    again, cfg2 = stage.inference_model(str(model))
    assert again is den and cfg2 == cfg and cfg2 is not cfg and len(calls) == 1
    st = os.stat(model / "weights.pt")
    os.utime(model / "weights.pt", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    other, _ = stage.inference_model(model)
    assert other is not den and len(calls) == 2
