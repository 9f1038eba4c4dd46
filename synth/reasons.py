"""Every reason a row can be rejected for, and what it means: one typed registry.

A rejected row lists reason names in `reject_reasons` and one human-readable line per reason in
`reject_details` (shards, `synth verify`). The names come from here, in the order a row meets them:

- generation: the engine or the method refused the output before verification (`Row.error`);
- filter: one per filter that ran, named like the filter (built-in or a user's plug-in; `filter_reason`);
- judge: the LLM judge's verdicts on rows that passed every filter;
- policy: the run's own decisions about rows that passed every check.

Engines and methods write `name: detail` strings (`engine_error: HTTP 500: ...`); `split_error`
turns one into the reason and its detail. Nothing here imports another synth module, so the runner,
the verifier, the manifest and the report can all use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Iterable


class Stage(str, Enum):
    GENERATION = "generation"
    FILTER = "filter"
    JUDGE = "judge"
    POLICY = "policy"


@dataclass(frozen=True)
class Reason:
    name: str
    stage: Stage
    description: str


def _generation(name: str, description: str) -> Reason:
    return Reason(name, Stage.GENERATION, description)


ENGINE_ERROR = _generation("engine_error", "the engine gave no usable answer for this request (engine outages are retried "
                                           "and stop the job resumable instead: see the manifest's engine block)")
REQUEST_REFUSED = _generation("request_refused", "the server refused this one request (an HTTP 4xx other than a too-long "
                                                 "prompt); the detail quotes it")
CHAT_TEMPLATE = _generation("chat_template", "the model's chat template could not render this request's messages")
INVALID_REQUEST = _generation("invalid_request", "the engine could not take this one request (vLLM refused a sampling "
                                                 "setting or a schema it cannot apply, or its text is not valid UTF-8); "
                                                 "the detail quotes why")
PROMPT_TOO_LONG = _generation("prompt_too_long", "the prompt does not fit the model's context window")
UNPARSEABLE = _generation("unparseable", "the output is not a usable instruction/response pair (invalid JSON, template "
                                         "markup left in it, fewer than 3 words)")
ECHO = _generation("echo", "the generated response repeats its instruction")
NOVELTY = _generation("novelty", "the generated instruction is a near-copy of a seed's instruction (chrF)")
STRUCTURE_LOST = _generation("structure_lost", "the translation lost, duplicated or reordered protected spans (code, "
                                               "links, placeholders) or changed a number")
SOURCE_TOO_LONG = _generation("source_too_long", "a source message is longer than translate.max_source_chars: not sent "
                                                 "at all (it would become too many requests)")
ANSWER_TOO_LONG = _generation("answer_too_long", "the server sent far more than max_tokens allows (it ignored max_tokens: "
                                                 "more characters than 16 per token, more output tokens reported, or a "
                                                 "body over the byte cap); not read further")
TRANSLATION_TOO_LONG = _generation("translation_too_long", "a translated message is far longer than its source (the model "
                                                           "ran on); not back-translated, so one row never becomes many "
                                                           "requests")

ENCODING = _generation("encoding", "the text still holds U+FFFD (a character lost to a wrong decoding before it reached "
                                   "synth) after standardisation repaired what it could; the detail says where")

JUDGE_LANGUAGE = Reason("judge_language", Stage.JUDGE, "the judge found the text not (or not fluently) in the target language")
JUDGE_CONTENT = Reason("judge_content", Stage.JUDGE, "the judge found the response wrong, unhelpful or not answering the instruction")
JUDGE_CULTURE = Reason("judge_culture", Stage.JUDGE, "the judge found the content culturally out of place for the language's speakers")
JUDGE_UNPARSEABLE = Reason("judge_unparseable", Stage.JUDGE, "the judge's answer could not be read as a verdict")

SURPLUS = Reason("surplus", Stage.POLICY, "passed every check, but its language x category cell had already reached its target")

FIXED: dict[str, Reason] = {r.name: r for r in (
    ENGINE_ERROR, REQUEST_REFUSED, CHAT_TEMPLATE, INVALID_REQUEST, PROMPT_TOO_LONG, UNPARSEABLE, ECHO, NOVELTY, STRUCTURE_LOST, SOURCE_TOO_LONG,
    ANSWER_TOO_LONG, TRANSLATION_TOO_LONG, ENCODING,
    JUDGE_LANGUAGE, JUDGE_CONTENT, JUDGE_CULTURE, JUDGE_UNPARSEABLE, SURPLUS,
)}


def filter_reason(name: str, description: str = "") -> Reason:
    """The reason a filter rejects with: its own name."""
    return Reason(name, Stage.FILTER, description or f"the {name} filter's score is beyond its threshold")


def registry(filters: Iterable[tuple[str, str]] = ()) -> dict[str, Reason]:
    """The fixed reasons and one per (filter name, description). A filter named like a fixed reason
    would make rejects ambiguous: ValueError."""
    out = dict(FIXED)
    for name, description in filters:
        if name in FIXED:
            raise ValueError(f"filter name {name!r} is a reserved reject reason ({FIXED[name].stage.value}); rename the filter")
        out[name] = filter_reason(name, description)
    return out


def split_error(error: str) -> tuple[str, str]:
    """(reason, detail) of an engine or method error string such as `engine_error: HTTP 500: ...`."""
    name = error.split(":", 1)[0].strip()
    return name, error
