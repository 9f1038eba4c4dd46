"""Where synth finds its bundled data and caches.

`prompts/`, `languages/` and `filters/` live at the repository root in a checkout (so users edit them
in place) and under `synth/_data/` in an installed wheel.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """Directory of bundled data `name` (prompts, languages or filters)."""
    for candidate in (PACKAGE_DIR.parent / name, PACKAGE_DIR / "_data" / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"synth data directory {name!r} not found next to {PACKAGE_DIR}")


def cache_dir() -> Path:
    """Cache for converted models; outside the repository so clones and CI reuse it."""
    root = os.environ.get("SYNTH_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "synth"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_cached(path: Path, data: bytes) -> None:
    """Write a file of synth's cache whole or not at all: a unique temporary next to it, then renamed
    (concurrent processes may compute and save the same file). Raises OSError where it cannot write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # created, never taken over
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(name, path)
    except BaseException:
        # Only on failure, and only the temporary this call created: once renamed, its name is free
        # and may already be another process's temporary.
        Path(name).unlink(missing_ok=True)
        raise
