"""A real `ray start --head` with fake GPUs: `ray job submit` of `synth run`, a failing job, and where
the replica pool's placement code puts replicas (scheduled on free GPUs, pending while none is free).

One head for the module (starting one costs 10-60 s on a busy 2-core machine). It runs in its own
process group with its own ports and temp dir, and is stopped in a finally whatever the tests did:
never `ray stop`, which would stop every other Ray on the machine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
import yaml

from synth.engines.configs import VllmEngineConfig
from tests.cpu_env import CPU_ENV
from synth.engines.vllm_actor import place_replica, replica_count, wants_gpus
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
BIN = Path(sys.executable).parent  # the venv's `ray` and `synth`: the head's workers run this Python
HEAD_GPUS = 2


@dataclass
class Head:
    gcs: str        # for ray.init / RAY_ADDRESS
    dashboard: str  # for ray job submit
    env: dict


def _start_head() -> tuple[subprocess.Popen, Head, Path]:
    """`ray start --head --block` on free ports in its own process group; returns once the head is up."""
    temp = Path(tempfile.mkdtemp(prefix="synth-ray-", dir="/tmp"))  # short: Ray's socket paths are limited
    ports = {name: free_port() for name in (
        "port", "dashboard-port", "ray-client-server-port", "dashboard-agent-listen-port",
        "dashboard-agent-grpc-port", "runtime-env-agent-port", "metrics-export-port", "node-manager-port",
        "object-manager-port")}
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_AUTH_MODE="disabled", PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
               RAY_agent_register_timeout_ms="300000")  # a loaded 2-core machine starts the agent slowly
    log_path = temp / "head.log"
    cmd = [str(BIN / "ray"), "start", "--head", "--block", "--num-cpus", "2", "--num-gpus", str(HEAD_GPUS),
           "--include-dashboard", "true", "--dashboard-host", "127.0.0.1", "--temp-dir", str(temp / "ray"),
           "--object-store-memory", str(200 * 2**20), "--disable-usage-stats",
           *(f"--{name}={port}" for name, port in ports.items())]
    with open(log_path, "w") as log:
        head = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 300
    while "block forever" not in log_path.read_text():
        if head.poll() is not None or time.monotonic() > deadline:
            tail = log_path.read_text()[-3000:]
            _stop_head(head, temp)
            raise RuntimeError(f"ray start --head did not come up:\n{tail}")
        time.sleep(0.5)
    return head, Head(f"127.0.0.1:{ports['port']}", f"http://127.0.0.1:{ports['dashboard-port']}", env), temp


def _stop_head(head: subprocess.Popen, temp: Path) -> None:
    head.terminate()  # `ray start --block` stops the processes it started
    try:
        head.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(head.pid, signal.SIGKILL)  # anything of this head's process group still there
    except ProcessLookupError:
        pass
    shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def ray_head():
    # Ray gives a starting raylet a fixed 30 s to register (ray/_private/node.py): on a 2-core machine
    # loaded by parallel work (load average 30+) that can run out, so a head that did not come up is
    # started again, a few times
    attempts = 5
    for attempt in range(attempts):
        try:
            head, info, temp = _start_head()
            break
        except RuntimeError as exc:
            if attempt == attempts - 1:
                raise
            print(f"retrying: {exc}", file=sys.stderr)
    try:
        yield info
    finally:
        _stop_head(head, temp)


# ---- placement: the pool's own functions, on a head that declares fake GPUs -----------------------------

def test_device_decides_whether_replicas_ask_for_gpus():
    auto = VllmEngineConfig(model="m", replicas="auto", tensor_parallel_size=2)
    assert wants_gpus(auto, 4) and replica_count(auto, 4) == 2
    assert not wants_gpus(auto, 0) and replica_count(auto, 0) == 1
    gpu = VllmEngineConfig(model="m", replicas="auto", device="gpu")
    assert wants_gpus(gpu, 0) and replica_count(gpu, 0) == 1  # no GPU yet: ask anyway, wait for one
    cpu = VllmEngineConfig(model="m", replicas="auto", device="cpu")
    assert not wants_gpus(cpu, 8) and replica_count(cpu, 8) == 1
    assert place_replica(cpu, use_gpus=False).options["num_gpus"] == 0
    assert place_replica(gpu, use_gpus=True).options["num_gpus"] == 1


PROBE = r'''
import json, logging, os, sys, threading, time
import ray
from ray.util.state import list_actors
from synth.engines.configs import VllmEngineConfig
from synth.engines.vllm_actor import await_replicas, place_replica, replica_count, wants_gpus

address = sys.argv[1]
ray.init(address=address, log_to_driver=False)
out = {}

@ray.remote
class Probe:
    """Stands in for VLLMReplica (vLLM cannot run on a fake GPU): reports what Ray gave it."""
    def gpus(self):
        return [int(g) for g in ray.get_gpu_ids()], os.environ.get("CUDA_VISIBLE_DEVICES")
    def ranks(self, n):
        # what vLLM's Ray executor does inside the replica's placement group: one GPU worker per rank
        rank = ray.remote(num_gpus=1, num_cpus=0)(lambda: [int(g) for g in ray.get_gpu_ids()])
        return ray.get([rank.remote() for _ in range(n)], timeout=60)

# a worker given no GPU sees none once it hides them (Ray leaves CUDA_VISIBLE_DEVICES alone for it)
def visibility():
    from synth.devices import hide_unreserved_gpus
    before = os.environ.get("CUDA_VISIBLE_DEVICES")
    return before, hide_unreserved_gpus(), os.environ.get("CUDA_VISIBLE_DEVICES")
out["visible_0_gpus"] = ray.get(ray.remote(num_gpus=0)(visibility).remote())
out["visible_1_gpu"] = ray.get(ray.remote(num_gpus=1)(visibility).remote())

# a replica no node can hold fails at once (this head has no autoscaler) instead of waiting for ever
from synth.engines.vllm_actor import autoscaler_running, check_placement
from synth.errors import ConfigError
out["autoscaler"] = autoscaler_running()
nodes = [n["Resources"] for n in ray.nodes() if n["Alive"]]
for name, tp, pp in (("tp2", 2, 1), ("tp4", 4, 1), ("tp2pp2", 2, 2)):
    try:
        check_placement(VllmEngineConfig(model="m", tensor_parallel_size=tp, pipeline_parallel_size=pp,
                                         device="gpu", num_cpus=0.5), True, nodes, out["autoscaler"])
        out[name] = "fits"
    except ConfigError as exc:
        out[name] = str(exc)

# tensor_parallel_size 1: the actor holds the GPU
config = VllmEngineConfig(model="m", replicas="auto", device="auto", num_cpus=0.5)
gpus = ray.cluster_resources().get("GPU", 0)
out["count"], out["wants"] = replica_count(config, gpus), wants_gpus(config, gpus)
placements = [place_replica(config, True) for _ in range(out["count"] + 1)]  # one more than the GPUs
actors = [Probe.options(**p.options).remote() for p in placements]
refs = [a.gpus.remote() for a in actors]
ready, waiting = ray.wait(refs, num_returns=out["count"], timeout=120)  # the GPUs' worth start
more, waiting = ray.wait(waiting, num_returns=len(waiting), timeout=3)  # the extra one does not
out["scheduled"] = [ray.get(r) for r in ready + more]
out["waiting"] = len(waiting)
late = actors[refs.index(waiting[0])] if waiting else None
if late is not None:
    states = {a.actor_id: a.state for a in list_actors(address=address, filters=[("class_name", "=", "Probe")])}
    out["late_state"] = states.get(late._actor_id.hex())
    first = actors[refs.index(ready[0])]
    freed = ray.get(ready[0])[0]
    lines = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    logging.getLogger("synth.engines.vllm_actor").addHandler(handler)
    logging.getLogger("synth.engines.vllm_actor").setLevel(logging.INFO)
    threading.Timer(4.0, lambda: ray.kill(first)).start()  # a GPU frees after a while
    started = time.monotonic()
    await_replicas([waiting[0]], placements[0].describe(), log_every_s=1.0)  # the pool's own wait
    out["waited_s"] = time.monotonic() - started
    out["late_gpus"], out["freed"] = ray.get(waiting[0]), freed
    out["wait_log"] = lines
for a in actors:
    ray.kill(a)

# tensor_parallel_size 2: a packed placement group of 2 GPU bundles, the actor in bundle 0 without a GPU
config = VllmEngineConfig(model="m", tensor_parallel_size=2, device="gpu", num_cpus=0.5)
one = place_replica(config, True)
out["tp_kwargs"] = {k: one.engine_kwargs.get(k) for k in ("tensor_parallel_size", "distributed_executor_backend")}
out["tp_ready"] = one.placement_group.wait(timeout_seconds=30)
probe = Probe.options(**one.options).remote()
out["tp_actor_gpus"] = ray.get(probe.gpus.remote(), timeout=60)[0]
out["tp_rank_gpus"] = sorted(g for r in ray.get(probe.ranks.remote(2), timeout=60) for g in r)
two = place_replica(config, True)
out["tp_second_ready_while_full"] = two.placement_group.wait(timeout_seconds=3)
ray.kill(probe)
ray.util.remove_placement_group(one.placement_group)
out["tp_second_ready_after_free"] = two.placement_group.wait(timeout_seconds=30)
ray.util.remove_placement_group(two.placement_group)
print("PROBE " + json.dumps(out))
'''


def test_replicas_get_fake_gpus_and_wait_when_none_is_free(ray_head):
    result = subprocess.run([sys.executable, "-c", PROBE, ray_head.gcs], capture_output=True, text=True,
                            env=ray_head.env, cwd=ROOT, timeout=300)
    lines = [l for l in result.stdout.splitlines() if l.startswith("PROBE ")]
    assert result.returncode == 0 and lines, result.stderr[-3000:]
    out = json.loads(lines[-1][len("PROBE "):])
    # Ray 2.60 leaves CUDA_VISIBLE_DEVICES unset for a 0-GPU worker (all GPUs visible); hidden, it is empty
    assert out["visible_0_gpus"] == [None, True, ""]
    assert out["visible_1_gpu"][1:] == [False, out["visible_1_gpu"][0]] and out["visible_1_gpu"][0] in ("0", "1")
    # 2 GPUs on one node: tp 2 fits; tp 4, or 2 stages of 2 (4 GPUs), cannot ever be placed
    assert out["autoscaler"] is False and out["tp2"] == "fits"
    assert "4 GPU(s)" in out["tp4"] and "largest: 2 GPU" in out["tp4"] and "engine.tensor_parallel_size" in out["tp4"]
    assert "2 stages of 2" in out["tp2pp2"]
    # replicas: auto on a 2-GPU head is 2 replicas, each scheduled on its own GPU
    assert out["count"] == HEAD_GPUS and out["wants"]
    assert sorted(g for gpus, _ in out["scheduled"] for g in gpus) == list(range(HEAD_GPUS))
    assert all(visible == ",".join(map(str, gpus)) for gpus, visible in out["scheduled"])
    # a third one waits for a GPU instead of failing, and gets the GPU the killed one freed
    assert out["waiting"] == 1 and out["late_state"] == "PENDING_CREATION"
    assert out["late_gpus"][0] == out["freed"]
    assert out["waited_s"] >= 3 and any("not ready after" in m and "1 GPU" in m for m in out["wait_log"])
    # tensor parallel: the group holds 2 GPUs for vLLM's rank workers, the replica actor none
    assert out["tp_kwargs"] == {"tensor_parallel_size": 2, "distributed_executor_backend": "ray"}
    assert out["tp_ready"] and out["tp_actor_gpus"] == [] and out["tp_rank_gpus"] == [0, 1]
    assert not out["tp_second_ready_while_full"] and out["tp_second_ready_after_free"]


# ---- ray job submit --------------------------------------------------------------------------------------

# Verification quality is tested elsewhere; here the tiny random model must get rows through, so the
# job brings its own preset (presets are data) with the checks random tokens can pass.
PERMISSIVE = {"name": "permissive", "filters": ["empty", "dedup"], "thresholds": {"empty": 1, "dedup": 0.5}}


def _job_dir(parent: Path, model: str, **overrides) -> Path:
    """What a user submits: the job file with its seeds, sources and preset, nothing else (no .venv, no out/)."""
    directory = parent / "submit"
    (directory / "seeds").mkdir(parents=True)
    (directory / "sources").mkdir()
    shutil.copy(EXAMPLES / "seeds" / "fra_Latn.jsonl", directory / "seeds")
    shutil.copy(EXAMPLES / "sources" / "en_sft.jsonl", directory / "sources")
    (directory / "permissive.yaml").write_text(yaml.safe_dump(PERMISSIVE))
    job = {
        "name": "rayjob",
        "targets": [{"lang": "fra_Latn", "rows": 3, "methods": {"icl": 0.5, "translate": 0.5},
                     "categories": ["open_qa"], "seeds": "seeds/fra_Latn.jsonl"}],
        "sources": {"path": "sources/en_sft.jsonl"},
        "engine": {"model": model, "max_model_len": 512, "num_cpus": 1, "batch_size": 4,
                   "engine_kwargs": {"enforce_eager": True, "dtype": "float32"}, "env": CPU_ENV},
        "sampling": {"max_tokens": 24, "temperature": 0.7, "top_p": 1.0, "seed": 1},
        "verify": {"preset": "permissive.yaml"},
        "plan": {"max_rounds": 2, "max_attempts_per_row": 3},
        "output": {"shard_rows": 1},
        **overrides,
    }
    (directory / "job.yaml").write_text(yaml.safe_dump(job))
    return directory


def _submit(head: Head, directory: Path, output: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "ray"), "job", "submit", "--address", head.dashboard, "--working-dir", ".", "--",
         "synth", "run", "job.yaml", "--output", str(output)],
        capture_output=True, text=True, env=head.env, cwd=directory, timeout=600)


def _job_status(head: Head, submitted: subprocess.CompletedProcess) -> str:
    from ray.job_submission import JobSubmissionClient

    job_id = re.search(r"raysubmit_\w+", submitted.stdout + submitted.stderr).group(0)
    return str(JobSubmissionClient(head.dashboard).get_job_status(job_id))


def test_ray_job_submit_runs_synth_and_writes_the_contract_outputs(ray_head, tiny_model_dir, tmp_path):
    directory = _job_dir(tmp_path, tiny_model_dir)
    out = tmp_path / "out"
    result = _submit(ray_head, directory, out)
    logs = result.stdout + result.stderr
    assert result.returncode == 0, logs[-4000:]
    assert _job_status(ray_head, result) == "SUCCEEDED"
    # the driver's logs reach the submitter: replica placement (the head's fake GPU) and per-round progress
    assert re.search(r"replica\(s\) of .*, each on 1 CPU, 1 GPU", logs), logs[-4000:]
    assert re.search(r"progress fra_Latn: accepted \d+/3", logs), logs[-4000:]
    manifest = json.loads((out / "manifest.json").read_text())
    stats = manifest["languages"]["fra_Latn"]
    shards = sorted((out / "fra_Latn").glob("train-*.parquet"))
    assert stats["accepted"] >= 1 and len(shards) == stats["accepted"]  # shard_rows: 1
    accepted = pl.concat([pl.read_parquet(s) for s in shards])
    assert accepted.columns[:11] == ["id", "lang", "method", "category", "messages", "source_id", "source_lang",
                                     "model", "prompt_template", "scores", "created_at"]
    assert (accepted["lang"] == "fra_Latn").all() and accepted["id"].n_unique() == accepted.height
    rejects = sorted((out / "rejected" / "fra_Latn").glob("*.parquet"))
    rejected = pl.concat([pl.read_parquet(r) for r in rejects]) if rejects else None
    assert (rejected.height if rejected is not None else 0) == stats["rejected"]
    assert stats["accepted"] + stats["rejected"] == stats["attempts"]
    assert stats["accepted"] + stats["shortfall"] == stats["target"]
    assert (out / "README.md").read_text().startswith("---\n")
    assert (out / "report.html").read_text().startswith("<!doctype html>")


def test_ray_job_with_an_invalid_config_fails_and_submit_exits_nonzero(ray_head, tiny_model_dir, tmp_path):
    directory = _job_dir(tmp_path, tiny_model_dir, plan={"max_rounds": 0})
    out = tmp_path / "out"
    result = _submit(ray_head, directory, out)
    logs = result.stdout + result.stderr
    assert result.returncode != 0, logs[-3000:]
    assert _job_status(ray_head, result) == "FAILED"
    assert "plan.max_rounds" in logs  # the job log names the field
    assert not out.exists()  # nothing written

# the cluster examples (launcher configs, the KubeRay RayJob) are checked in tests/test_ray_cluster_config.py
