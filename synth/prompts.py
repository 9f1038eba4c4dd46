"""Prompt templates as data: YAML files in `prompts/`, rendered by a sandboxed Jinja2 environment.

A template declares its variables; undeclared or missing ones fail at load time, not mid-job. A
template is user input: the sandbox refuses attribute tricks, and every render is bounded in time,
in loop length and in size (`RenderLimit`), so a runaway template fails fast instead of hanging a job.
"""

from __future__ import annotations

import hashlib
import re
import signal
import threading
from contextlib import contextmanager
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Literal

from jinja2 import StrictUndefined, TemplateError, meta
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, model_validator

from synth.errors import ConfigError
from synth.loading import load_yaml
from synth.paths import data_dir

MAX_RENDER_CHARS = 200_000  # a rendered message longer than this is a runaway template
MAX_RANGE = 10_000  # range() in a template
MAX_RENDER_SECONDS = 2.0


class RenderLimit(ValueError):
    """A template went past a render limit (time, size, range) or failed to render."""


class _LimitedSandbox(SandboxedEnvironment):
    """Jinja's sandbox plus bounds on what one expression can build ('a' * 10**8, 10 ** 10**6)."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context, operator, left, right):
        if operator == "**" and isinstance(right, (int, float)) and abs(right) > 64:
            raise RenderLimit(f"exponent {right} is past the template limit of 64")
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * n > MAX_RENDER_CHARS:
                    raise RenderLimit(f"repeating a sequence {n} times is past the template limit")
        return super().call_binop(context, operator, left, right)


def _range(*args: int) -> range:
    values = range(*args)
    if len(values) > MAX_RANGE:
        raise RenderLimit(f"range of {len(values)} items is past the template limit of {MAX_RANGE}")
    return values


# Untrusted text in a judge prompt sits between <name> ... </name> lines; inside it, every `<` (or a
# full-width look-alike) that could open or close a tag is written `&lt;`, so no text can end its own
# block or forge another.
_TAG_LIKE = re.compile(r"[<\uff1c\ufe64](?=\s*/?\s*[^\W\d_]|\s*[!?])")
_LABEL = re.compile(r"[a-z][a-z0-9_-]{0,30}")


def quote_data(text, label: str = "text") -> str:
    """`text` as a delimited data block for a judge prompt (the `data` filter of templates:
    `{{ text | data("translation") }}`)."""
    if not _LABEL.fullmatch(label):
        raise ValueError(f"data block label {label!r}: use a short lowercase word, e.g. translation")
    body = _TAG_LIKE.sub("&lt;", "" if text is None else str(text))
    return f"<{label}>\n{body}\n</{label}>"


_ENV = _LimitedSandbox(undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False)
_ENV.globals["range"] = _range
_ENV.filters["data"] = quote_data


@contextmanager
def _time_limit(seconds: float, what: str):
    """A block bounded in CPU time (ITIMER_PROF: this process's CPU seconds, not the wall clock: on a
    loaded machine a normal render can wait seconds for a core, and a 50,000-attempt job died of it,
    bench/scale.py) in the main thread, where prompts render; elsewhere unbounded in time."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(signum, frame):
        raise RenderLimit(f"{what}: rendering took over {seconds:g} s of CPU (a runaway loop?)")

    previous = signal.signal(signal.SIGPROF, expired)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


@lru_cache(maxsize=256)
def _compiled(source: str):
    """A template compiled once per process: compiling it on every render left part of each compile
    in memory (~165 bytes per attempt of a job, bench/driver_memory.py) and cost CPU."""
    return _ENV.from_string(source)


class PromptTemplate(BaseModel):
    """A named chat prompt: optional system message plus a user message, both Jinja2."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    method: Literal["icl", "translate", "back_translate", "judge", "judge_pairwise"]
    description: str = ""
    variables: list[str]
    system: str | None = None
    user: str

    @model_validator(mode="after")
    def _declared_variables(self) -> "PromptTemplate":
        used: set[str] = set()
        for source in filter(None, (self.system, self.user)):
            try:
                used |= meta.find_undeclared_variables(_ENV.parse(source))
            except Exception as exc:
                raise ValueError(f"prompt {self.name!r}: template syntax error: {exc}") from exc
        if used != set(self.variables):
            raise ValueError(
                f"prompt {self.name!r}: declared variables {sorted(self.variables)} "
                f"but the template uses {sorted(used)}"
            )
        return self

    @cached_property
    def hash(self) -> str:
        text = f"{self.system or ''}\x00{self.user}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def render(self, **variables: Any) -> list[dict[str, str]]:
        """The chat messages; RenderLimit (a ValueError) when the template fails or runs past a limit."""
        missing = set(self.variables) - set(variables)
        if missing:
            raise RenderLimit(f"prompt {self.name!r}: missing variables {sorted(missing)}")
        messages = []
        for role, source in (("system", self.system), ("user", self.user)):
            if not source:
                continue
            try:
                with _time_limit(MAX_RENDER_SECONDS, f"prompt {self.name!r}"):
                    content = _compiled(source).render(**variables).strip()
            except RenderLimit as exc:
                if f"prompt {self.name!r}" in str(exc):
                    raise
                raise RenderLimit(f"prompt {self.name!r}: {exc}") from None
            except (TemplateError, ArithmeticError, TypeError, ValueError, LookupError, MemoryError) as exc:
                raise RenderLimit(f"prompt {self.name!r}: the {role} template fails to render: "
                                  f"{type(exc).__name__}: {exc}") from None
            if len(content) > MAX_RENDER_CHARS:
                raise RenderLimit(f"prompt {self.name!r}: the {role} message renders to {len(content)} characters, "
                                  f"past the limit of {MAX_RENDER_CHARS}")
            messages.append({"role": role, "content": content})
        return messages


def load_prompt_file(path: Path) -> PromptTemplate:
    raw = load_yaml(path, "prompt template")
    try:
        return PromptTemplate.model_validate(raw)
    except Exception as exc:
        raise ConfigError(f"{path}: invalid prompt template: {exc}") from exc


def load_prompts(directory: str | Path | None = None) -> dict[str, PromptTemplate]:
    """Every template in `directory` (default: the bundled `prompts/`), keyed by name."""
    root = Path(directory) if directory else data_dir("prompts")
    prompts: dict[str, PromptTemplate] = {}
    for path in sorted(root.glob("*.yaml")):
        template = load_prompt_file(path)
        if template.name in prompts:
            raise ConfigError(f"{path}: duplicate prompt name {template.name!r}")
        prompts[template.name] = template
    return prompts
