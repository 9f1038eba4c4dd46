"""Prompt templates as data: YAML files in `prompts/`, rendered by a sandboxed Jinja2 environment.

A template declares its variables; undeclared or missing ones fail at load time, not mid-job.
"""

from __future__ import annotations

import hashlib
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from jinja2 import StrictUndefined, meta
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, model_validator

from synth.errors import ConfigError
from synth.paths import data_dir

_ENV = SandboxedEnvironment(undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False)


class PromptTemplate(BaseModel):
    """A named chat prompt: optional system message plus a user message, both Jinja2."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    method: Literal["icl", "translate", "back_translate", "judge"]
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
        missing = set(self.variables) - set(variables)
        if missing:
            raise ValueError(f"prompt {self.name!r}: missing variables {sorted(missing)}")
        messages = []
        if self.system:
            messages.append({"role": "system", "content": _ENV.from_string(self.system).render(**variables).strip()})
        messages.append({"role": "user", "content": _ENV.from_string(self.user).render(**variables).strip()})
        return messages


def load_prompt_file(path: Path) -> PromptTemplate:
    try:
        return PromptTemplate.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
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
