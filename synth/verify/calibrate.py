"""`synth calibrate`: per-language thresholds from known-good pairs, written as a filter preset.

Filters only score and thresholds decide (base.py), so calibration is a quantile of the good rows'
scores: for each language with enough good rows and each quality filter of the base preset, the
threshold that lets through all but a `quantile` share of them (the low quantile where higher is
better, the high quantile where lower is better), clamped between two documented bounds:
- never looser than LOOSEST: known-good data can hold bad rows, and a language whose good rows score
  badly on a filter gets that bound, not a threshold that accepts anything;
- never stricter than STRICTEST: with a few dozen rows the quantile is the extreme row (all Khmer
  rows copy 0% of the English source, so the quantile is 0), and a threshold at such an extreme
  would reject the next good row that quotes one English name.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl
import yaml

from synth.errors import ConfigError
from synth.loading import yaml_value
from synth.shards import atomic_write_bytes
from synth.standardise import Standardiser, standardise_batch
from synth.verify.pairs import read_pairs, verdict_columns
from synth.verify.pipeline import FILTERS, FilterPreset, Verifier, load_preset

# The loosest threshold calibration may set: at least this (higher is better) or at most this (lower is better).
LOOSEST: dict[str, float] = {
    "lid": 0.01,  # P(target)/P(top); lid.176 is weak on some languages (the default preset ships Somali at
                  # 0.06): the floor of bench/verify_accuracy.py --calibrate-lid, where wrong-language UDHR
                  # text scores under 0.001 for most languages
    "script": 0.3,  # under 30% of the letters in the language's script is not text in that language
    "laser": 0.5,  # cosine of LASER embeddings
    "semantic": 0.5,  # cosine of centred multilingual-e5-small embeddings: unrelated paragraphs of one domain
                      # (UDHR articles, dev split) score 0.57 at the median, so a lower bar refuses little
    "roundtrip": 15.0,  # chrF++ of the back-translation
    "mixed_language": 0.4,  # share of the text in another language
    "repetition": 0.35,  # share of repeated n-grams
    "length_ratio": 1.0986,  # ln 3: 3x longer or shorter than the source
    "copy": 0.85,  # share of the text in runs copied from the source
    "fluency": 0.15,  # known share above chance: a weak dictionary (a word list without the inflected
                      # forms) knows little of real text, but random letters score about 0
    "structure_mismatch": 2.0,  # twice every tolerance of synth/verify/rules/alignment.py: 4x the length, or
                                # counts off by 4 + 40%, says nothing about meaning any more
}
# The strictest threshold calibration may set.
STRICTEST: dict[str, float] = {
    "lid": 0.9,
    "script": 0.9,
    "laser": 0.85,
    "semantic": 0.7,  # about the median of real translations (dev split): stricter refuses half of them
    "roundtrip": 60.0,
    "mixed_language": 0.05,
    "repetition": 0.1,
    "length_ratio": 0.4055,  # ln 1.5
    "copy": 0.4,
    "fluency": 0.8,  # real text holds names, loanwords and forms a dictionary lacks
    "structure_mismatch": 0.6,  # x1.5 in romanised letters: languages' own expansion differs by that much
}
# Policy, not quality: good rows say nothing about them, so they keep the base thresholds.
NOT_CALIBRATED = ("empty", "truncated", "dedup", "contamination")
assert set(LOOSEST) == set(STRICTEST) == set(FILTERS) - set(NOT_CALIBRATED), "a bound for every calibrated filter"


def _quantile_threshold(scores: np.ndarray, quantile: float, higher_is_better: bool) -> float:
    """An observed score, rounded outwards so the good rows at the boundary still pass."""
    if higher_is_better:
        return math.floor(float(np.quantile(scores, quantile, method="lower")) * 1e4) / 1e4
    return math.ceil(float(np.quantile(scores, 1.0 - quantile, method="higher")) * 1e4) / 1e4


def bounded(name: str, value: float) -> float:
    """`value` clamped between the filter's documented loosest and strictest thresholds."""
    loosest, strictest = LOOSEST[name], STRICTEST[name]
    if FILTERS[name].higher_is_better:
        return min(max(value, loosest), strictest)
    return max(min(value, loosest), strictest)


def _head(path: Path, size: int) -> bytes:
    """The first `size` bytes of a file (an existing --output is checked by its header, never read whole)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(size)
    except OSError:
        return b""


def calibrate(input_path: Path, output_path: Path, base: str = "default", quantile: float = 0.02,
              min_rows: int = 20, laser_dir: Path | None = None, lid_skip: set[str] = frozenset()) -> dict:
    """Score the good pairs with the base preset's quality filters; write the calibrated preset."""
    if not 0 < quantile < 0.5:
        raise ConfigError(f"--quantile {quantile}: give a share of good rows to give up, between 0 and 0.5 (e.g. 0.02)")
    if min_rows < 1:
        raise ConfigError(f"--min-rows {min_rows}: must be at least 1")
    if output_path.suffix not in (".yaml", ".yml"):
        raise ConfigError(f"--output {output_path}: a preset is a .yaml file, e.g. filters/{output_path.stem or 'mine'}.yaml")
    mark = b"# Calibrated by `synth calibrate"
    if output_path.is_dir() or (output_path.exists() and _head(output_path, len(mark)) != mark):
        raise ConfigError(f"--output {output_path}: exists and was not written by synth calibrate; "
                          f"give a new file name (synth never overwrites a user's file)")
    preset = load_preset(base)
    frame, registry = read_pairs(input_path, preset, lid_skip)
    frame = pl.from_arrow(standardise_batch(frame.to_arrow(), Standardiser(preset.standardise, registry)))  # as verify scores
    if frame.is_empty():
        raise ConfigError(f"{input_path}: holds no rows; calibrate needs known-good pairs (at least --min-rows per language)")
    if laser_dir is not None and not laser_dir.is_dir():
        raise ConfigError(f"--laser-dir {laser_dir}: not a directory")
    quality = [f for f in preset.filters if f in LOOSEST]  # a user's filter keeps its preset thresholds
    verifier = Verifier(preset.model_copy(update={"filters": quality}), registry, set(lid_skip), laser_dir)

    scores: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    rows: dict[str, int] = defaultdict(int)
    langs, start = frame["lang"].to_list(), 0
    for scored in verdict_columns(verifier, frame):  # every core, as synth verify
        batch = langs[start:start + len(scored)]
        start += len(scored)
        for lang in batch:
            rows[lang] += 1
        for name in quality:
            for lang, value in zip(batch, scored.scores.get(name, ())):
                if value is not None and math.isfinite(value):
                    scores[lang][name].append(value)

    languages: dict[str, dict[str, float]] = {lang: dict(v) for lang, v in preset.languages.items()}
    calibrated: dict[str, dict[str, dict]] = {}
    for lang in sorted(rows):
        if rows[lang] < min_rows:
            continue
        for name in quality:
            values = np.asarray(scores[lang].get(name, []), dtype=float)
            if values.size < min_rows:  # not applicable to enough rows (no source, no back-translation)
                continue
            raw = _quantile_threshold(values, quantile, FILTERS[name].higher_is_better)
            value = bounded(name, raw)
            languages.setdefault(lang, {})[name] = value
            calibrated.setdefault(lang, {})[name] = {"threshold": value, "quantile_value": raw,
                                                     "bounded": value != raw, "rows": int(values.size)}
    name = output_path.stem
    result = FilterPreset(
        name=name,
        description=f"Calibrated from {input_path.name} on the {preset.name} preset (quantile {quantile}).",
        filters=list(preset.filters), plugins=dict(preset.plugins), thresholds=dict(preset.thresholds), languages=languages,
        lid_model=preset.lid_model, lid_backends=dict(preset.lid_backends),
    )
    text = _render(result, input_path, preset.name, quantile, min_rows, rows, calibrated, quality)
    FilterPreset.model_validate(yaml_value(text)).check(str(output_path))  # what we write must load
    atomic_write_bytes(output_path, text.encode("utf-8"))
    return {"rows": dict(rows), "calibrated": calibrated, "kept_base": sorted(l for l in rows if l not in calibrated),
            "not_run": verifier.not_run, "output": str(output_path)}


def _render(preset: FilterPreset, input_path: Path, base: str, quantile: float, min_rows: int,
            rows: dict[str, int], calibrated: dict[str, dict[str, dict]], quality: list[str]) -> str:
    """The preset as YAML, with comments saying how each number was derived."""
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    bounds = ", ".join(f"{n} {min(LOOSEST[n], STRICTEST[n]):.4g}..{max(LOOSEST[n], STRICTEST[n]):.4g}"
                       for n in quality)
    few = [f"{lang} ({n})" for lang, n in sorted(rows.items()) if lang not in calibrated]
    head = [
        f"# Calibrated by `synth calibrate {input_path.name} --base {base} --quantile {quantile}` on {today} (UTC)",
        f"# from {sum(rows.values())} known-good rows. Per language with at least {min_rows} rows, each quality",
        f"# filter's threshold is the {quantile:.0%} quantile of its good scores where higher is better, the",
        f"# {1 - quantile:.0%} quantile where lower is better (about {quantile:.0%} of good rows fail each filter),",
        "# kept within these bounds (neither looser nor stricter; synth/verify/calibrate.py says why):",
        f"# {bounds}.",
        f"# Not calibrated (policy, not quality): {', '.join(NOT_CALIBRATED)}; they keep the base thresholds.",
        f"# Kept the base thresholds (fewer than {min_rows} rows): {', '.join(few) or 'none'}.",
    ]
    body = {k: v for k, v in preset.model_dump().items() if k != "languages"}
    lines = head + [yaml.safe_dump(body, sort_keys=False, allow_unicode=True, width=100).rstrip()]
    if not preset.languages:
        return "\n".join(lines + ["languages: {}", ""])
    lines.append("languages:")
    for lang, values in sorted(preset.languages.items()):
        info = calibrated.get(lang)
        if info:
            lines.append(f"  # {lang}: {rows[lang]} good rows")
        else:
            lines.append(f"  # {lang}: from the base preset")
        lines.append(f"  {lang}:")
        for name, value in values.items():
            note = ""
            if info and name in info:
                detail = info[name]
                note = f"  # {detail['rows']} scores" + (
                    f"; quantile {detail['quantile_value']:.4g} was outside the bounds" if detail["bounded"] else "")
            lines.append(f"    {name}: {value:.6g}{note}")
    return "\n".join(lines + [""])
