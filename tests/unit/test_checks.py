"""Config mistakes that only the images reveal are found at parse time, naming the key."""

import copy
from pathlib import Path

import numpy as np
import pytest
import yaml

from microdiff import samples
from microdiff.checks import check_config
from microdiff.errors import InputError
from tests.conftest import write_image


@pytest.fixture
def experiment(tmp_path):
    write_image(tmp_path / "a.ome.tif", np.zeros((2, 8, 8), np.uint16), "ome-tiff")
    (tmp_path / "s.tsv").write_text("sample\tpath\tchannels\nA\ta.ome.tif\tdapi,actin\n")
    config = yaml.safe_load(Path("config.yaml").read_text())
    return config, samples.from_sheet(tmp_path / "s.tsv")


@pytest.mark.parametrize(
    "key,value,match",
    [
        (("normalize", "percentiles"), [99.8, 1.0], "normalize.percentiles: low 99.8 must be"),
        (("segment", "nuclei_channel"), 2, "segment.nuclei_channel: channel 2 is out of range"),
        (("segment", "cytoplasm_channel"), "tubulin", "no channel named 'tubulin'"),
    ],
)
def test_bad_config_names_the_key(experiment, key, value, match):
    config, df = experiment
    bad = copy.deepcopy(config)
    bad[key[0]][key[1]] = value
    with pytest.raises(InputError, match=match):
        check_config(bad, df)


def test_good_config_and_names_pass(experiment):
    config, df = experiment
    check_config(config, df)
    config["segment"]["nuclei_channel"] = "dapi"
    check_config(config, df)
