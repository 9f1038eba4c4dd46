"""ray_cluster.yaml passes Ray's own cluster-config validator."""

from pathlib import Path

import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[1]


def test_ray_cluster_yaml_is_valid_for_the_cluster_launcher():
    config = yaml.safe_load((ROOT / "ray_cluster.yaml").read_text())
    validate_config(prepare_config(config))  # fills the launcher defaults, then raises on schema errors
    gpu = config["available_node_types"]["gpu_worker"]
    assert gpu["max_workers"] >= 1 and any("synth[gpu]" in c for c in config["setup_commands"])


def test_the_validator_rejects_a_misspelled_key():
    import pytest

    config = yaml.safe_load((ROOT / "ray_cluster.yaml").read_text())
    config["available_node_types"]["gpu_worker"]["max_worker"] = 3
    with pytest.raises(Exception):
        validate_config(prepare_config(config))
