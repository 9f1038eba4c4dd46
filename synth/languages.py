"""Language registry: one YAML file per language in `languages/`, validated into LanguageSpec.

Reasoning-language policy: a teacher reasons best in a language it is proficient in. Each language
names one in `reasoning_language`: its own code when the teacher can think in it (high-resource,
some mid-resource languages), else a pivot it shares with its speakers (eng_Latn; fra_Latn for
francophone Africa, Madagascar and Haiti; spa_Latn for the Andes and Paraguay; ind_Latn for Javanese
and Sundanese). The pivot only shapes the teacher's scratch notes for `reasoning` and `math` tasks
(see synth.methods.icl); the training rows are always written in the target language.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from synth.errors import ConfigError
from synth.loading import load_yaml
from synth.paths import data_dir
from synth.standardise import LanguageRules

CODE_RE = re.compile(r"^[a-z]{3}_[A-Z][a-z]{3}$")


class LanguageSpec(BaseModel):
    """What synth knows about one language: codes, script, LID labels, LASER coverage, context."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    code: str
    name: str
    native_name: str
    script: str
    iso639_1: str | None = None
    iso639_3: str
    lid_label: str | None  # fastText lid.176 label without "__label__"; None: not covered
    lid_labels: dict[Literal["cld2"], str] = Field(
        default_factory=dict, description="labels of the other offline LID backends: {cld2: ha}; see synth.verify.lid.router")
    laser3: bool = False
    resource_level: Literal["high", "mid", "low"]
    reasoning_language: str = Field(
        "eng_Latn", description="the language the teacher thinks in: this language's own code, or a pivot in the registry")
    regions: list[str] = []
    cultural_context: str = ""
    standardise: LanguageRules | None = Field(
        None, description="what standardisation adds for this language: its own letters for look-alikes, NFKC, "
                          "no-break spaces, Vietnamese tone-mark style, rules skipped (docs/verification.md)")

    @field_validator("code", "reasoning_language")
    @classmethod
    def _code_shape(cls, value: str) -> str:
        if not CODE_RE.match(value):
            raise ValueError(f"{value!r} is not a FLORES-200 code like 'swh_Latn'")
        return value

    @property
    def reasons_natively(self) -> bool:
        """True when the teacher is asked to think in this language itself (no pivot)."""
        return self.reasoning_language == self.code


def check_reasoning_languages(registry: dict[str, LanguageSpec], where: str) -> None:
    """Every pivot must be a registered language that reasons natively (no pivot chains)."""
    for spec in registry.values():
        pivot = registry.get(spec.reasoning_language)
        if pivot is None:
            raise ConfigError(f"{where}/{spec.code}.yaml: reasoning_language {spec.reasoning_language!r} is not a "
                              f"registered language; use {spec.code} (reason natively) or one of "
                              f"{', '.join(sorted(c for c, s in registry.items() if s.reasons_natively))}")
        if not pivot.reasons_natively:
            raise ConfigError(f"{where}/{spec.code}.yaml: reasoning_language {pivot.code} itself pivots to "
                              f"{pivot.reasoning_language}; point at a language that reasons natively")


def load_language_file(path: Path) -> LanguageSpec:
    raw = load_yaml(path, "language file")
    try:
        spec = LanguageSpec.model_validate(raw)
    except Exception as exc:  # pydantic or YAML error: name the file
        raise ConfigError(f"{path}: invalid language file: {exc}") from exc
    if spec.code != path.stem:
        raise ConfigError(f"{path}: code {spec.code!r} must match the file name {path.stem!r}")
    return spec


@lru_cache(maxsize=8)
def load_registry(directory: str | None = None) -> dict[str, LanguageSpec]:
    """All languages in `directory` (default: the bundled `languages/`), keyed by code.

    Pivots of a user directory may be bundled languages, so they are checked against both.
    """
    root = Path(directory) if directory else data_dir("languages")
    registry = {spec.code: spec for spec in map(load_language_file, sorted(root.glob("*.yaml")))}
    known = {**load_registry(), **registry} if directory else registry
    check_reasoning_languages(known, str(root))
    return registry


def get_language(code: str, directory: str | None = None) -> LanguageSpec:
    registry = load_registry(directory)
    if code not in registry:
        raise ConfigError(
            f"unknown language {code!r}; known: {', '.join(sorted(registry))}. "
            f"Add languages/{code}.yaml to define it."
        )
    return registry[code]
