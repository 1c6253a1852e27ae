import dataclasses
import json

import pytest

from tf_ganimation.core.config import Config, DataConfig, LossConfig
from tf_ganimation.runs import run_folder

from conftest import TINY_MODEL


def test_config_round_trips_through_json(tmp_path):
    config = Config(model=TINY_MODEL, loss=LossConfig(lambda_cyc=3.0),
                    data=DataConfig(data_dir="/data/x", image_size=32, batch_size=4, synthetic_images=12))
    run_folder.save_config(config, tmp_path)
    assert run_folder.load_config(tmp_path) == config
    assert [path.name for path in tmp_path.iterdir()] == [run_folder.CONFIG_FILE]  # no temporary file left


def test_a_config_json_without_a_newer_field_loads_with_its_default(tmp_path):
    config = Config(model=TINY_MODEL, data=DataConfig(data_dir="/data/x", image_size=32))
    fields = dataclasses.asdict(config)
    del fields["data"]["synthetic_images"]  # written before the field existed
    (tmp_path / run_folder.CONFIG_FILE).write_text(json.dumps(fields, indent=2, sort_keys=True) + "\n")
    loaded = run_folder.load_config(tmp_path)
    assert loaded == config and loaded.data.synthetic_images == 0


def test_a_missing_config_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json not found"):
        run_folder.load_config(tmp_path)
