"""GPU tests: collected only by `make test-gpu` (pytest -m gpu) on a machine with CUDA."""

from pathlib import Path

import pytest
import torch

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items):
    # this hook sees the whole session's items, not only this folder's
    for item in items:
        if HERE in Path(item.fspath).parents:
            item.add_marker(pytest.mark.gpu)


@pytest.fixture
def cuda():
    if not torch.cuda.is_available():
        pytest.fail("the GPU tests need CUDA; run them with `make test-gpu` on a GPU machine")
    return torch.device("cuda")
