"""The content digest of every input file a job reads: part of what a resume checks.

The config hash sees where the inputs are (their paths), not what they hold. A seed or source file
edited between a kill and the resume would otherwise mix rows made from the old content with rows
made from the new (the attempt ids index sources by position). So a run records `input_digests` in
`_work/state.json` when it starts, and a resume compares (synth.rundir), apart from the config hash.

One entry per input: its name (a file's absolute path, or for a non-file input a URI-like name) and
a digest. Seeds and sources that are Hub datasets or `datasets` folders are named and digested by
synth.datasource.input_digest (the repo, the commit its revision resolves to, config, split, mapping).
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path

from synth.datasource import input_digest
from synth.errors import ConfigError
from synth.loading import load_yaml
from synth.paths import data_dir

CHUNK = 1 << 20


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes, read in chunks (a sources file may be large)."""
    try:
        with open(path, "rb") as handle:
            return "sha256:" + hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read this input ({exc.strerror}); restore it or fix the job") from None


def _prompt_files(prepared) -> list[Path]:
    """The template files of the prompts this job renders (a user's prompts_dir overrides bundled)."""
    job = prepared.job
    uses = {m for t in job.targets for m in t.methods}
    names = ({job.icl.prompt} if "icl" in uses else set()) | \
        ({job.translate.prompt, job.translate.back_prompt} if "translate" in uses else set())
    if job.judge.enabled:
        names |= {job.judge.prompt, "back_translate_turn"}
    names -= set(prepared.custom_prompts)  # added from code: their text is in the config hash
    found: dict[str, Path] = {}
    for root in [data_dir("prompts")] + ([Path(job.prompts_dir)] if job.prompts_dir else []):
        for path in sorted(Path(root).glob("*.yaml")):
            try:
                name = (load_yaml(path, "prompt template") or {}).get("name")
            except Exception:
                continue  # prepare() loaded every template already; this one is not used
            if name in names:
                found[name] = path
    return [found[n] for n in sorted(found)]


def _language_files(prepared) -> list[Path]:
    """The language files of the languages this job uses (a user's languages_dir overrides bundled)."""
    job = prepared.job
    files = []
    for code in sorted(prepared.languages):
        user = Path(job.languages_dir) / f"{code}.yaml" if job.languages_dir else None
        bundled = data_dir("languages") / f"{code}.yaml"
        files += [p for p in (user if user and user.is_file() else bundled,) if p.is_file()]
    return files


def _preset_files(name_or_path: str) -> list[Path]:
    """The preset file and the ones it `extends` (resolved as synth.verify.pipeline.load_preset does)."""
    path = Path(name_or_path)
    if not path.suffix:
        path = data_dir("filters") / f"{name_or_path}.yaml"
    files = []
    for _ in range(6):
        if not path.is_file() or path in files:
            break
        files.append(path)
        raw = load_yaml(path, "filter preset")
        if not isinstance(raw, dict) or "extends" not in raw:
            break
        base = str(raw["extends"])
        nxt = Path(base) if Path(base).suffix else data_dir("filters") / f"{base}.yaml"
        path = nxt if nxt.is_absolute() or not Path(base).suffix else path.parent / nxt
    return files


def _module_file(module: str) -> Path | None:
    """The source file of a user's filter module (its own file; what it imports is not followed)."""
    loaded = sys.modules.get(module)
    origin = getattr(loaded, "__file__", None)
    if origin is None:
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            return None
        origin = spec.origin if spec else None
    return Path(origin) if origin and Path(origin).is_file() else None


def input_digests(prepared) -> dict[str, str]:
    """{input name: content digest} of everything the job's rows are made from or checked against:
    seeds, sources, the prompt templates it renders, its language files, its filter preset (and the
    presets it extends, and user filter modules), and its evaluation (contamination) sets."""
    job = prepared.job
    files: list[Path] = []
    digests: dict[str, str] = {}
    entries = [t.seeds for t in job.targets if t.seeds is not None and t.lang in prepared.seeds]
    entries += [job.sources] if job.sources is not None and prepared.sources else []
    for entry in entries:  # a Hub dataset or datasets folder by what identifies it, a plain file by its bytes
        if item := input_digest(entry):
            digests[item[0]] = item[1]
        else:
            files.append(Path(entry.path))
    files += _prompt_files(prepared)
    files += _language_files(prepared)
    files += _preset_files(job.verify.preset)
    if prepared.preset is not None:
        files += [f for f in map(_module_file, sorted(p.module for p in prepared.preset.plugins.values())) if f]
    code_modules = {type(f).__module__ for f in prepared.filters} - {"__main__"}  # a script changes for many reasons
    files += [f for f in map(_module_file, sorted(code_modules)) if f]
    if job.verify.contamination is not None:
        files += list(job.verify.contamination.paths)
    for path in files:
        name = str(Path(path).absolute())
        if name not in digests:
            digests[name] = file_digest(Path(path))
    return digests
