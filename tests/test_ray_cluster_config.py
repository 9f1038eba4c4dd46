"""The cluster examples: Ray's own launcher validator, the KubeRay RayJob CRD schemas, pinned versions."""

import gzip
import json
import re
from pathlib import Path

import pytest
import ray
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
# the RayJob CRD's openAPIV3Schema (v1) of the oldest and newest KubeRay the example supports; see tests/data/kuberay/
KUBERAY_SCHEMAS = sorted((ROOT / "tests" / "data" / "kuberay").glob("rayjob-v*.schema.json.gz"))
PINNED_SYNTH = re.compile(r'"synth(\[gpu\])? @ git\+https://\S+@v[\d.]+"')


def _installs(commands: list[str]) -> list[str]:
    return [c for c in commands if "pip install" in c and "synth" in c]


def _pins_the_heads_ray(command: str) -> bool:
    return f'"ray[default]=={ray.__version__}"' in command and bool(PINNED_SYNTH.search(command))


def test_ray_cluster_yaml_is_valid_and_pins_the_image_ray_and_synth():
    config = yaml.safe_load((ROOT / "ray_cluster.yaml").read_text())
    validate_config(prepare_config(config))  # fills the launcher defaults, then raises on schema errors
    gpu = config["available_node_types"]["gpu_worker"]
    assert gpu["max_workers"] >= 1
    # one image for every node, tagged with this Ray; installs go into it, never into the system Python
    assert config["docker"]["image"].startswith(f"rayproject/ray:{ray.__version__}-py311")
    (install,) = _installs(config["setup_commands"])
    assert "synth[gpu]" in install and _pins_the_heads_ray(install) and "python3 -m pip" not in install


def test_the_validator_rejects_a_misspelled_key():
    config = yaml.safe_load((ROOT / "ray_cluster.yaml").read_text())
    config["available_node_types"]["gpu_worker"]["max_worker"] = 3
    with pytest.raises(Exception):
        validate_config(prepare_config(config))


def test_on_premises_cluster_example_uses_a_venv_with_the_heads_versions():
    config = yaml.safe_load((EXAMPLES / "ray_cluster_local.yaml").read_text())
    prepared = prepare_config(config)  # the launcher's own preparation of a `provider: local` config
    validate_config(prepared)
    assert config["provider"]["type"] == "local" and config["provider"]["head_ip"]
    assert prepared["available_node_types"]["local.cluster.node"]["max_workers"] == len(config["provider"]["worker_ips"])
    head, workers = _installs(config["head_setup_commands"]), _installs(config["worker_setup_commands"])
    assert len(head) == len(workers) == 1 and all(_pins_the_heads_ray(c) for c in head + workers)
    assert "synth[gpu]" in workers[0] and all(c.startswith("~/synth-venv/bin/pip ") for c in head + workers)
    starts = config["head_start_ray_commands"] + config["worker_start_ray_commands"]
    assert all(c.startswith(". ~/synth-venv/bin/activate && ray ") for c in starts)
    config["provider"].pop("head_ip")  # and the validator is not a rubber stamp
    with pytest.raises(BaseException):
        validate_config(prepare_config(config))


def _kuberay_documents() -> dict[str, dict]:
    docs = [d for d in yaml.safe_load_all((EXAMPLES / "kuberay_rayjob.yaml").read_text()) if d]
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in docs}


def _strict(schema):
    """A CRD schema as JSON Schema, as `kubectl apply` (strict field validation) checks it: unknown fields
    are errors, int-or-string fields take both."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if "properties" in out and not out.get("x-kubernetes-preserve-unknown-fields"):
        out.setdefault("additionalProperties", False)
    return out


@pytest.mark.parametrize("schema_file", KUBERAY_SCHEMAS, ids=lambda p: p.name.split(".schema")[0])
def test_kuberay_rayjob_validates_against_the_crd_schema(schema_file):
    from jsonschema import Draft7Validator

    schema = _strict(json.loads(gzip.decompress(schema_file.read_bytes())))
    validator = Draft7Validator(schema)
    job = _kuberay_documents()["RayJob/synth-swahili"]
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(job)]
    assert not errors, errors
    broken = json.loads(json.dumps(job))
    broken["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["maxReplica"] = 8  # a typo is caught
    assert any("maxReplica" in e.message for e in validator.iter_errors(broken))


def test_two_kuberay_schema_versions_are_vendored():
    assert [p.name for p in KUBERAY_SCHEMAS] == ["rayjob-v1.5.1.schema.json.gz", "rayjob-v1.7.0.schema.json.gz"]


def test_kuberay_example_shows_replicas_model_cache_token_and_output_volume(tmp_path):
    from synth.config import parse_job

    docs = _kuberay_documents()
    job = docs["RayJob/synth-swahili"]
    spec = job["spec"]
    assert spec["entrypoint"].startswith("synth run ") and " --output /" in spec["entrypoint"]
    cluster = spec["rayClusterSpec"]
    assert cluster["enableInTreeAutoscaling"] is True and cluster["authOptions"]["mode"] == "token"
    assert cluster["rayVersion"] == ray.__version__
    head_pod = cluster["headGroupSpec"]["template"]["spec"]
    head = head_pod["containers"][0]
    assert head["name"] == "ray-head" and "nvidia.com/gpu" not in head["resources"]["limits"]
    mounts = {m["mountPath"]: m["name"] for m in head["volumeMounts"]}
    volumes = {v["name"]: v for v in head_pod["volumes"]}
    # the output lands on the PVC, the job file comes from the ConfigMap
    output_mount = next(m for m in mounts if spec["entrypoint"].split("--output ")[1].startswith(m))
    assert volumes[mounts[output_mount]]["persistentVolumeClaim"]["claimName"] in {
        d["metadata"]["name"] for d in docs.values() if d["kind"] == "PersistentVolumeClaim"}
    job_file = spec["entrypoint"].split()[2]
    config_map = docs[f"ConfigMap/{volumes[mounts[str(Path(job_file).parent)]]['configMap']['name']}"]
    for name, text in config_map["data"].items():
        (tmp_path / name).write_text(text)
    parsed = parse_job(tmp_path / Path(job_file).name)  # synth's own loader: the job file is valid
    (gpu,) = cluster["workerGroupSpecs"]
    worker_pod = gpu["template"]["spec"]
    worker = worker_pod["containers"][0]
    gpus_per_worker = int(worker["resources"]["limits"]["nvidia.com/gpu"])
    # workers scale from zero: the job names its replicas and asks for GPUs, one replica per GPU the group can hold
    assert gpu["minReplicas"] == 0 and parsed.engine.device == "gpu"
    assert parsed.engine.replicas == gpu["maxReplicas"] * gpus_per_worker // parsed.engine.tensor_parallel_size
    env = {e["name"]: e for e in worker["env"]}
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] and "value" not in env["HF_TOKEN"]
    cache = next(m for m in worker["volumeMounts"] if m["mountPath"] == env["HF_HOME"]["value"])
    cache_volume = next(v for v in worker_pod["volumes"] if v["name"] == cache["name"])
    assert docs[f"PersistentVolumeClaim/{cache_volume['persistentVolumeClaim']['claimName']}"]["spec"]["accessModes"] == [
        "ReadWriteMany"]
    assert worker["image"] == head["image"]  # the same synth on every node
