"""OpusFilter 3.3.1, the baseline of the verify benches, in a venv of its own (a support module, not a benchmark).

Bench side (synth's venv): `ensure_venv()` creates ~/.cache/synth/opusfilter-venv once and reuses it,
`filters(label)` is the configuration compared against synth, `decisions()` and `run_config()` drive
OpusFilter through a subprocess running this same file with the OpusFilter venv's python:

    opusfilter-venv/bin/python bench/_opusfilter.py decisions IN.json OUT.json
    opusfilter-venv/bin/python bench/_opusfilter.py run CONFIG.yaml     # = `opusfilter CONFIG.yaml`, timed

The venv side imports only the standard library and opusfilter. OpusFilter's LanguageIDFilter does
`import fasttext` and `fasttext.load_model(path)`; fasttext-predict installs a module of that name with
`load_model` and `predict`, which is all it calls, so the official `fasttext` (a C++ build, numpy<2)
is not needed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PACKAGES = ["opusfilter==3.3.1", "py3langid<0.3", "fasttext-predict"]
_CHECK = ("import importlib.metadata as m, fasttext, opusfilter.filters; "
          "assert m.version('opusfilter') == '3.3.1', m.version('opusfilter')")


def venv_dir() -> Path:
    from synth.paths import cache_dir

    return cache_dir() / "opusfilter-venv"


def ensure_venv() -> Path:
    """The venv's python; created and installed only when missing or broken."""
    python = venv_dir() / "bin" / "python"
    if python.exists() and subprocess.run([python, "-c", _CHECK], capture_output=True).returncode == 0:
        return python
    print(f"creating {venv_dir()} with {' '.join(PACKAGES)} ...", file=sys.stderr)
    base = shutil.which("python3.11") or sys.executable
    subprocess.run([base, "-m", "venv", str(venv_dir())], check=True)
    subprocess.run([python, "-m", "pip", "install", "--quiet", *PACKAGES], check=True)
    subprocess.run([python, "-c", _CHECK], check=True)
    return python


def filters(label: str) -> list[dict]:
    """The OpusFilter configuration compared: fastText lid.176 on both sides, char length ratio < 2, repetition."""
    from synth.verify.lid.router import bundled_lid_path

    return [
        {"LanguageIDFilter": {"languages": ["en", label], "id_method": "fasttext",
                              "fasttext_model_path": str(bundled_lid_path())}},
        {"LengthRatioFilter": {"unit": "char", "threshold": 2}},
        {"RepetitionFilter": {}},
    ]


def decisions(groups: dict[str, list[tuple[str, str]]]) -> dict[str, list[dict]]:
    """lid label -> per pair {filter name: accepted} and the scores, from OpusFilter's own score/accept."""
    python = ensure_venv()
    with tempfile.TemporaryDirectory() as tmp:
        request = {label: {"filters": filters(label), "pairs": pairs} for label, pairs in groups.items()}
        Path(tmp, "in.json").write_text(json.dumps(request), encoding="utf-8")
        subprocess.run([python, __file__, "decisions", f"{tmp}/in.json", f"{tmp}/out.json"], check=True)
        return json.loads(Path(tmp, "out.json").read_text(encoding="utf-8"))


def run_config(config_path: Path) -> dict:
    """Run a whole OpusFilter YAML config; returns its time (after imports) and the subprocess's wall time."""
    python = ensure_venv()
    start = time.perf_counter()
    done = subprocess.run([python, __file__, "run", str(config_path)], check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {**result, "wall_seconds": wall}


# --- venv side -------------------------------------------------------------------------------------

def _decisions_main(in_path: str, out_path: str) -> None:
    import logging

    logging.basicConfig(level=logging.ERROR)  # "LanguageIDFilter ... is deprecated, use FastTextFilter"
    from opusfilter.pipeline import FilterPipeline

    request = json.loads(Path(in_path).read_text(encoding="utf-8"))
    out = {}
    for label, group in request.items():
        pairs = [tuple(p) for p in group["pairs"]]
        rows = [{"scores": {}, "accepted": {}} for _ in pairs]
        for config, filt in zip(group["filters"], FilterPipeline.from_config(group["filters"]).filters):
            name = next(iter(config))
            for row, score in zip(rows, filt.score(pairs)):
                row["scores"][name] = score
                row["accepted"][name] = bool(filt.accept(score))
        out[label] = rows
    Path(out_path).write_text(json.dumps(out), encoding="utf-8")


def _run_main(config_path: str) -> None:
    import logging

    logging.basicConfig(level=logging.WARNING)
    from opusfilter.opusfilter import OpusFilter
    from opusfilter.util import yaml

    with open(config_path, encoding="utf-8") as f:
        configuration = yaml.load(f)
    import resource

    def children() -> float:  # worker processes of `default_n_jobs` > 1, once reaped
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    start, cpu, child = time.perf_counter(), time.process_time(), children()
    OpusFilter(configuration).execute_steps(overwrite=True)
    print(json.dumps({"seconds": time.perf_counter() - start,
                      "cpu_seconds": time.process_time() - cpu + children() - child}))


if __name__ == "__main__":
    os.environ.setdefault("TQDM_DISABLE", "1")
    if sys.argv[1] == "decisions":
        _decisions_main(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "run":
        _run_main(sys.argv[2])
    else:
        sys.exit(f"unknown command {sys.argv[1]!r}; use decisions or run")
