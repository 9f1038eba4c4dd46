"""What an engine can do, measured once before any work, and what a job needs of it.

Every engine feature synth uses (structured output, continuing a final assistant message, per-request
seeds) depends on the server: one may take `response_format: json_schema`, another only `json_object`,
another silently closes a prefilled assistant turn and starts a new one. `probe` tries each feature the
job will use on the real endpoint (`EngineNeeds`) and returns `Capabilities`; request building reads
them, so a job adapts (or stops with exit 2 naming the key to change) instead of failing mid-run.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Awaitable, Callable, Literal, Mapping

from synth.engines.base import Completion, GenerationRequest
from synth.errors import ConfigError
from synth.loading import json_value

log = logging.getLogger("synth")

# How structured output reaches the server, best first:
#   json_schema        response_format {type: json_schema, json_schema: {schema}} (OpenAI, vLLM, SGLang)
#   json_object+schema response_format {type: json_object, schema} (llama-cpp-python, Anyscale: the schema
#                      becomes a grammar), the schema also written into the prompt
#   json_object        response_format {type: json_object}: any JSON object, the schema in the prompt
#   text               no response_format: the schema in the prompt, the answer parsed as text
Structured = Literal["json_schema", "json_object+schema", "json_object", "text"]
STRUCTURED_LADDER: tuple[Structured, ...] = ("json_schema", "json_object+schema", "json_object")


@dataclass(frozen=True)
class EngineNeeds:
    """The engine features one job uses, each under the job key that asks for it."""

    # job key -> a JSON schema its requests are constrained to (e.g. icl.structured, judge.enabled)
    schemas: Mapping[str, dict] = field(default_factory=dict)
    strict: frozenset[str] = frozenset()  # keys of `schemas` that cannot fall back to plain text
    prefix: bool = False  # requests whose answer starts with a prefix (ICL's ### format)
    seeds: bool = False  # sampling.seed is set: per-request seeds


@dataclass(frozen=True)
class Capabilities:
    """How requests are sent to one engine; `probed` false: assumed from its config, not measured."""

    structured: Structured = "json_schema"
    continue_final_message: bool = True  # a final assistant message is continued (not closed)
    seeds: bool = True  # per-request seeds are sent
    seeds_reproducible: bool | None = None  # the same seed gave the same text (None: not measured)
    probed: bool = False
    checked: tuple[str, ...] = ()  # the features the probe tried (the others were not used by the job)
    notes: tuple[str, ...] = ()  # what was adapted, for the log and the manifest

    def manifest(self) -> dict:
        """As recorded in the manifest: a probed feature the job did not use is null (not measured)."""
        data = asdict(self)
        data["checked"], data["notes"] = list(self.checked), list(self.notes)
        if self.probed:
            unused = {"structured": ("structured",), "continue_final_message": ("continue_final_message",),
                      "seeds": ("seeds", "seeds_reproducible")}
            for feature, keys in unused.items():
                if feature not in self.checked:
                    data.update(dict.fromkeys(keys))
        return data


# an in-process vllm.LLM: structured outputs, prefill and seeds are called directly (no server between)
VLLM_CAPABILITIES = Capabilities(structured="json_schema", continue_final_message=True, seeds=True)

# A schema the probe's prompt does not mention: an answer that conforms proves the server enforced it.
PROBE_SCHEMA = {"type": "object", "properties": {"probe_ok": {"type": "string", "enum": ["synth"]}},
                "required": ["probe_ok"], "additionalProperties": False}
PROBE_QUESTION = [{"role": "user", "content": "Is the sky blue? Answer in one short sentence."}]

# send(request, capabilities, temperature) -> the completion; a request the server refuses as invalid
# comes back with `error` set, an outage raises (ConfigError at preflight)
Send = Callable[[GenerationRequest, Capabilities, float | None], Awaitable[Completion]]


def _one_line(error: str, limit: int = 160) -> str:
    """A server's error message as a short single line (for notes and messages)."""
    text = " ".join(error.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def schema_instruction(schema: dict) -> str:
    """What is written into the prompt when the server does not enforce the schema itself."""
    return ("\n\nReply with one JSON object only, no other text, matching this JSON schema:\n"
            + json.dumps(schema, ensure_ascii=False, separators=(",", ":")))


def _enforced(completion: Completion) -> bool:
    """The answer follows PROBE_SCHEMA, which its prompt never names (or was cut at max_tokens on the
    way there: random weights write whitespace): the server enforced the schema, not just read it."""
    try:
        return json_value(completion.text) == {"probe_ok": "synth"}
    except (ValueError, RecursionError):
        compact = re.sub(r"\s", "", completion.text)
        return completion.finish_reason == "length" and bool(compact) and '{"probe_ok":"synth"}'.startswith(compact)


def _json_object_start(completion: Completion) -> bool:
    """Constrained to a JSON object: it parses as one, or was cut at max_tokens after opening one."""
    text = completion.text.strip()
    try:
        return isinstance(json_value(text), dict)
    except (ValueError, RecursionError):
        return completion.finish_reason == "length" and text.startswith("{")


async def _probe_structured(send: Send, base: Capabilities) -> tuple[Structured, list[str]]:
    """The best structured-output form the server takes and honours (`text`: none), and what the
    better forms did instead."""
    tried = []
    chosen: Structured = "text"
    for mode in STRUCTURED_LADDER:
        request = GenerationRequest(id=f"probe-{mode}", messages=PROBE_QUESTION, max_tokens=24,
                                    json_schema=PROBE_SCHEMA)
        answer = await send(request, replace(base, structured=mode), 0.0)
        if answer.error:
            tried.append(f"{mode} refused ({_one_line(answer.error)})")
            continue
        honoured = _enforced(answer) if mode == "json_schema" else _json_object_start(answer)
        if honoured:
            chosen = mode
            break
        tried.append(f"{mode} ignored (answer {answer.text[:60]!r})")
    notes = [f"structured output: {chosen} ({'; '.join(tried)})"] if chosen != "json_schema" else []
    return chosen, notes


async def _check_schemas(send: Send, base: Capabilities, needs: EngineNeeds, where: str) -> None:
    """Each schema the job sends, in the chosen form: a server may take a toy schema and refuse a real one."""
    keys = list(needs.schemas)
    answers = await asyncio.gather(*(
        send(GenerationRequest(id=f"probe-{key}", messages=PROBE_QUESTION, max_tokens=8, json_schema=needs.schemas[key]),
             base, 0.0) for key in keys))
    for key, answer in zip(keys, answers):
        if answer.error:
            raise ConfigError(f"{key}: {where} takes structured output ({base.structured}) but refuses the schema "
                              f"of {key} ({_one_line(answer.error)}); set {key}: false")


async def _probe_continuation(send: Send, base: Capabilities) -> tuple[bool, str | None]:
    """Whether a final assistant message is continued: with the continuation flags the prompt must be
    shorter than the same messages without them (closed turn + a new assistant header). Token counts,
    not the model's words, decide: it works for any model, random weights included."""
    prefix = "### Instruction\n"
    flagged, closed = await asyncio.gather(
        send(GenerationRequest(id="probe-continue", messages=PROBE_QUESTION, max_tokens=1, prefix=prefix),
             replace(base, continue_final_message=True), None),
        send(GenerationRequest(id="probe-closed", max_tokens=1,
                               messages=[*PROBE_QUESTION, {"role": "assistant", "content": prefix}]),
             replace(base, continue_final_message=False), None))
    if flagged.error:
        return False, f"continue_final_message refused ({_one_line(flagged.error)})"
    if closed.error or not flagged.prompt_tokens or not closed.prompt_tokens:
        return False, "continue_final_message: not measurable (no token counts), the prefix is not sent"
    if flagged.prompt_tokens < closed.prompt_tokens:
        return True, None
    return False, ("continue_final_message ignored: the server closes a final assistant message and starts a new "
                   "turn (same prompt tokens with and without the flags); the prefix is not sent")


async def _probe_seeds(send: Send, base: Capabilities) -> tuple[bool, bool | None, str | None]:
    """Seeds accepted, and whether the same seed gives the same sampled text (temperature 1)."""
    seeded = GenerationRequest(id="probe-seed", messages=PROBE_QUESTION, max_tokens=8)
    first, second = await asyncio.gather(*(send(seeded, replace(base, seeds=True), 1.0) for _ in range(2)))
    if first.error:
        return False, None, f"per-request seeds refused ({_one_line(first.error)}): requests are sent unseeded"
    same = not second.error and second.text == first.text
    return True, same, None if same else "per-request seeds accepted but the same seed gave different texts"


async def probe(send: Send, needs: EngineNeeds, configured: Capabilities, where: str) -> Capabilities:
    """The capabilities of the endpoint `where` for the features in `needs` (`configured`: what the
    engine config asks for). Raises ConfigError (exit 2) naming the job key when a feature the job
    cannot do without is missing; every other gap is adapted to and noted."""
    base = replace(configured, structured="text", seeds=False, continue_final_message=False)
    notes: list[str] = []
    structured: Structured = configured.structured
    if needs.schemas:
        structured, found = await _probe_structured(send, base)
        notes += found
        missing = sorted(k for k in needs.strict if k in needs.schemas) if structured == "text" else []
        if missing:
            raise ConfigError(f"{missing[0]}: {where} takes no structured output ({'; '.join(found) or 'refused'}); "
                              f"set {missing[0]}: false to parse the ### format instead")
    # the rest is independent: sent at once (a loaded server answers them in about the time of one)
    continuation = configured.continue_final_message and needs.prefix
    checks = {"schemas": _check_schemas(send, replace(base, structured=structured), needs, where)
              if needs.schemas and structured != "text" else None,
              "continue_final_message": _probe_continuation(send, base) if continuation else None,
              "seeds": _probe_seeds(send, base) if needs.seeds else None}
    asked = {name: check for name, check in checks.items() if check is not None}
    results = dict(zip(asked, await asyncio.gather(*asked.values())))
    continues = configured.continue_final_message
    if "continue_final_message" in results:
        continues, note = results["continue_final_message"]
        if note:
            notes.append(note + "; set engine.continue_final_message: false to skip this check")
    seeds, reproducible = False, None
    if "seeds" in results:
        seeds, reproducible, note = results["seeds"]
        if note:
            notes.append(note)
    checked = (("structured",) if needs.schemas else ()) + tuple(k for k in results if k != "schemas")
    found = Capabilities(structured=structured, continue_final_message=continues, seeds=seeds,
                         seeds_reproducible=reproducible, probed=True, checked=checked, notes=tuple(notes))
    for note in notes:
        log.warning("%s: %s", where, note)
    return found
