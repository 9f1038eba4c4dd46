"""Language registry: one YAML file per language in `languages/`, validated into LanguageSpec."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, field_validator

from synth.errors import ConfigError
from synth.paths import data_dir

CODE_RE = re.compile(r"^[a-z]{3}_[A-Z][a-z]{3}$")


class LanguageSpec(BaseModel):
    """What synth knows about one language: codes, script, LID label, LASER coverage, context."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str
    name: str
    native_name: str
    script: str
    iso639_1: str | None = None
    iso639_3: str
    lid_label: str | None  # fastText lid.176 label without "__label__"; None: not covered
    laser3: bool = False
    resource_level: Literal["high", "mid", "low"]
    reasoning_language: str = "eng_Latn"
    regions: list[str] = []
    cultural_context: str = ""

    @field_validator("code")
    @classmethod
    def _code_shape(cls, value: str) -> str:
        if not CODE_RE.match(value):
            raise ValueError(f"{value!r} is not a FLORES-200 code like 'swh_Latn'")
        return value


def load_language_file(path: Path) -> LanguageSpec:
    try:
        spec = LanguageSpec.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except Exception as exc:  # pydantic or YAML error: name the file
        raise ConfigError(f"{path}: invalid language file: {exc}") from exc
    if spec.code != path.stem:
        raise ConfigError(f"{path}: code {spec.code!r} must match the file name {path.stem!r}")
    return spec


@lru_cache(maxsize=8)
def load_registry(directory: str | None = None) -> dict[str, LanguageSpec]:
    """All languages in `directory` (default: the bundled `languages/`), keyed by code."""
    root = Path(directory) if directory else data_dir("languages")
    return {spec.code: spec for spec in map(load_language_file, sorted(root.glob("*.yaml")))}


def get_language(code: str, directory: str | None = None) -> LanguageSpec:
    registry = load_registry(directory)
    if code not in registry:
        raise ConfigError(
            f"unknown language {code!r}; known: {', '.join(sorted(registry))}. "
            f"Add languages/{code}.yaml to define it."
        )
    return registry[code]
