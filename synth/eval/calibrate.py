"""`synth calibrate --labels`: the judge's pass marks per language and dimension, set to agree best with
native speakers' verdicts.

The labels are rows `id, lang, dimension, verdict` (verdict: keep/reject, pass/fail, good/bad, true/false,
1/0) for rows the judge graded (a `synth verify --judge` output: `score_judge_<dimension>`; or a
`synth eval` results.parquet: `scores.judge_<dimension>`). For each language and dimension with at
least `min_rows` labelled, graded rows, the threshold t in 1..5 whose decision (grade >= t
keeps) has the highest balanced agreement with the verdicts (the mean of the keep rate on rows the
speakers keep and the reject rate on rows they reject: a language where most rows are good cannot be
"agreed with" by keeping everything); a tie goes to the threshold nearest the base preset's. The result
is the base preset with `judge.languages` set, every number explained in a comment, like the other
filters' calibration (synth/verify/calibrate.py).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
import yaml

from synth.loading import iter_jsonl
from synth.config import DIMENSIONS
from synth.errors import ConfigError
from synth.shards import atomic_write_bytes
from synth.verify.pipeline import load_preset

CANDIDATES = (1.0, 2.0, 3.0, 4.0, 5.0)  # the judge grades in integers 1-5: a half step decides nothing more
KEEP = {"keep", "pass", "good", "true", "1", "yes", "accept", "accepted"}
REJECT = {"reject", "fail", "bad", "false", "0", "no", "rejected"}


def balanced_agreement(pairs: list[tuple[bool, bool]]) -> float | None:
    """Mean of the keep rate on rows labelled keep and the reject rate on rows labelled reject; pairs
    are (decision keeps, label keeps). None when the labels hold one class only."""
    keep = [d for d, label in pairs if label]
    reject = [not d for d, label in pairs if not label]
    if not keep or not reject:
        return None
    return (sum(keep) / len(keep) + sum(reject) / len(reject)) / 2


def _verdict(value, where: str) -> bool:
    text = str(value).strip().lower()
    if text in KEEP:
        return True
    if text in REJECT:
        return False
    raise ConfigError(f"{where}: verdict {value!r}; use keep/reject (or pass/fail, good/bad, true/false, 1/0)")


def read_labels(path: Path) -> list[dict]:
    if not path.is_file():
        raise ConfigError(f"--labels {path}: file not found; give JSONL, Parquet or CSV rows id, lang, dimension, verdict")
    try:
        frame = (pl.read_parquet(path) if path.suffix == ".parquet" else pl.read_csv(path) if path.suffix == ".csv"
                 else pl.DataFrame([row for _, row in iter_jsonl(path, "--labels")]))
    except Exception as exc:
        raise ConfigError(f"--labels {path}: not readable ({type(exc).__name__}: {exc})") from None
    missing = [c for c in ("id", "lang", "dimension", "verdict") if c not in frame.columns]
    if missing:
        raise ConfigError(f"--labels {path}: missing columns {missing}; rows are id, lang, dimension, verdict")
    out = []
    for number, row in enumerate(frame.to_dicts(), 1):
        where = f"--labels {path} row {number}"
        if row["dimension"] not in DIMENSIONS:
            raise ConfigError(f"{where}: dimension {row['dimension']!r}; one of {list(DIMENSIONS)}")
        out.append({"id": str(row["id"]), "lang": str(row["lang"]), "dimension": row["dimension"],
                    "keep": _verdict(row["verdict"], where)})
    if not out:
        raise ConfigError(f"--labels {path}: no rows")
    return out


def read_grades(path: Path) -> dict[str, dict[str, float | None]]:
    """id -> {dimension: the judge's grade}, from a `synth verify --judge` output or a synth eval
    results.parquet."""
    if not path.is_file():
        raise ConfigError(f"{path}: file not found; give a `synth verify --judge` output or a synth eval results.parquet")
    try:
        frame = pl.read_parquet(path)
    except Exception as exc:
        raise ConfigError(f"{path}: not a readable Parquet file ({type(exc).__name__})") from None
    if all(f"score_judge_{d}" in frame.columns for d in DIMENSIONS):
        columns = {d: frame[f"score_judge_{d}"].to_list() for d in DIMENSIONS}
    elif "scores" in frame.columns and all(f"judge_{d}" in frame["scores"].struct.fields for d in DIMENSIONS):
        columns = {d: frame["scores"].struct.field(f"judge_{d}").to_list() for d in DIMENSIONS}
    else:
        raise ConfigError(f"{path}: no judge grades (score_judge_<dimension> columns, or scores.judge_<dimension>); "
                          f"run `synth verify --judge` or `synth eval` with a judge first")
    ids = [str(i) for i in frame["id"].to_list()]
    return {i: {d: columns[d][n] for d in DIMENSIONS} for n, i in enumerate(ids)}


def calibrate_judge(input_path: Path, labels_path: Path, output_path: Path, base: str = "default",
                    min_rows: int = 20) -> dict:
    preset = load_preset(base)
    labels = read_labels(Path(labels_path))
    grades = read_grades(Path(input_path))
    groups: dict[tuple[str, str], list[tuple[float, bool]]] = defaultdict(list)
    unmatched = 0
    for label in labels:
        grade = grades.get(label["id"], {}).get(label["dimension"])
        if grade is None:
            unmatched += 1
            continue
        groups[(label["lang"], label["dimension"])].append((float(grade), label["keep"]))
    results: dict[str, dict[str, dict]] = defaultdict(dict)
    languages = {lang: dict(values) for lang, values in preset.judge.languages.items()}
    for (lang, dim), pairs in sorted(groups.items()):
        current = preset.judge.languages.get(lang, {}).get(dim, getattr(preset.judge.thresholds, dim))
        before = balanced_agreement([(g >= current, keep) for g, keep in pairs])
        entry = {"rows": len(pairs), "base": current, "agreement_base": before}
        if len(pairs) < min_rows or before is None:
            entry["kept"] = f"fewer than {min_rows} rows" if len(pairs) < min_rows else "labels of one class only"
            results[lang][dim] = entry
            continue
        scored = [(balanced_agreement([(g >= t, keep) for g, keep in pairs]), -abs(t - current), t) for t in CANDIDATES]
        best, _, threshold = max(scored)
        entry.update({"threshold": threshold, "agreement": best})
        languages.setdefault(lang, {})[dim] = threshold
        results[lang][dim] = entry
    calibrated = preset.model_copy(update={"judge": preset.judge.model_copy(update={"languages": languages})})
    atomic_write_bytes(Path(output_path), _render(calibrated, input_path, labels_path, base, min_rows, results,
                                                 unmatched).encode("utf-8"))
    return {"results": dict(results), "unmatched": unmatched, "output": str(output_path)}


def _render(preset, input_path: Path, labels_path: Path, base: str, min_rows: int, results: dict,
            unmatched: int) -> str:
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    head = [f"# Judge thresholds calibrated by `synth calibrate {Path(input_path).name} --labels "
            f"{Path(labels_path).name} --base {base}` on {today} (UTC): per language and dimension with at least "
            f"{min_rows} labelled rows,",
            "# the pass mark (1-5) with the best balanced agreement with the native speakers' verdicts.",
            f"# Labels without a judge grade in the input: {unmatched}."]
    for lang, dims in sorted(results.items()):
        for dim, r in sorted(dims.items()):
            base_text = "-" if r["agreement_base"] is None else f"{r['agreement_base']:.3f}"
            if "threshold" in r:
                head.append(f"# {lang} {dim}: {r['rows']} rows; {r['base']:g} -> {r['threshold']:g}, balanced "
                            f"agreement {base_text} -> {r['agreement']:.3f}")
            else:
                head.append(f"# {lang} {dim}: {r['rows']} rows; kept {r['base']:g} ({r['kept']})")
    body = preset.model_dump()
    return "\n".join(head + [yaml.safe_dump(body, sort_keys=False, allow_unicode=True, width=100)])
