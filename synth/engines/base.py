"""Engine-neutral request/response types and the sampling config shared by every engine."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated, Protocol, Sequence

from pydantic import BaseModel, ConfigDict, Field


class SamplingConfig(BaseModel):
    """Sampling parameters, identical for every engine type."""

    # strict: a bool or a string is not a number; finite floats only (docs/safety.md)
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    temperature: float = Field(0.7, ge=0.0, le=10.0, description="sampling temperature (0 to 10); 0: greedy")
    top_p: float = Field(0.95, gt=0.0, le=1.0, description="nucleus sampling (above 0, at most 1): the smallest set "
                         "of tokens whose probabilities sum to this; 1: off (on a CPU, top_p < 1 scans the "
                         "vocabulary per token and dominates the cost)")
    max_tokens: int = Field(256, ge=1, le=1_000_000, description="longest answer per request, in tokens (1 to "
                            "1,000,000); an answer cut here is marked truncated")
    seed: int | None = Field(0, ge=0, le=2**63 - 1, description="base of reproducible per-request seeds (0 to "
                             "2^63-1; each request's seed is a hash of this and its id); null: none sent. An "
                             "OpenAI-compatible server that refuses seeds gets none (the preflight checks), rows "
                             "then are not reproducible")
    stop: list[Annotated[str, Field(min_length=1, max_length=1000)]] = Field(
        [], max_length=64, description="strings that end an answer, added to the method's own stops (at most 64, "
        "each 1 to 1000 characters)")
    repetition_penalty: float = Field(1.0, gt=0.0, le=100.0, description="above 1 discourages repeated tokens; 1: "
                                      "off (above 0, at most 100). OpenAI-compatible servers get it as vLLM's "
                                      "repetition_penalty field (llama.cpp's server ignores it)")


@dataclass
class GenerationRequest:
    """One chat prompt. `id` is deterministic so retries and resumes never duplicate work."""

    id: str
    messages: list[dict[str, str]]
    max_tokens: int | None = None  # lowers SamplingConfig.max_tokens for this request
    stop: list[str] | None = None  # added to SamplingConfig.stop for this request
    prefix: str = ""  # the assistant's answer starts with this (kept in Completion.text)
    json_schema: dict | None = None  # constrain the answer to JSON of this schema (structured outputs)

    def seed(self, base_seed: int | None) -> int | None:
        """Per-request seed: reproducible, and different across requests of one batch; None: unseeded."""
        if base_seed is None:
            return None
        digest = hashlib.blake2b(f"{base_seed}:{self.id}".encode(), digest_size=4).digest()
        return int.from_bytes(digest, "little") & 0x7FFFFFFF


@dataclass
class Completion:
    """The engine's answer to one request. `error` set means no usable text (a reject reason)."""

    id: str
    text: str = ""
    finish_reason: str | None = None  # "stop" | "length" | None on error
    prompt_tokens: int = 0
    output_tokens: int = 0
    error: str | None = None  # e.g. "prompt_too_long", "engine_error: ..."


class EngineUnavailable(RuntimeError):
    """The engine itself keeps failing (endpoint down, 5xx, timeouts, replicas crash-looping).

    Engines retry such failures with backoff and raise this once their circuit breaker trips; they
    never turn them into Completions with `error` set, which would become rejected rows and use up the
    job's attempt budget. The runner stops the job resumable (status `interrupted`, exit 1).
    `error` set on a Completion is kept for what the request itself got wrong (e.g. a prompt too long).
    """


class Engine(Protocol):
    """Anything that turns requests into completions, one completion per request (joined by `id`).

    Raises EngineUnavailable when the engine (not one request) keeps failing.
    """

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]: ...

    def shutdown(self) -> None: ...
