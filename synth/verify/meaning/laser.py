"""LASER similarity between source and candidate (nano-laser: LASER2, LASER3 where it exists).

Weights live in a configured directory (`verify.laser_dir`; nano-laser downloads missing ones there)
or, unconfigured, in synth's cache, where `laser_setup` fetches the files the job's languages need on
first use. A machine that cannot reach the download server finds out within seconds and runs the
offline `semantic` filter instead (semantic.py); the Verifier lists LASER as not run, with the reason.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from synth.paths import cache_dir
from synth.verify.base import Candidate, Filter
from synth.verify.meaning.embedding_memory import EmbeddingMemory

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0  # seconds: reaching the server, and each read of a download, at most
LASER2_FILES = ("laser2.pt", "laser2.spm", "laser2.cvocab")


def laser_cache() -> Path:
    """Where unconfigured LASER weights go: synth's cache, shared by every job on the machine."""
    return cache_dir() / "laser"


def laser3_files(lang: str) -> list[str]:
    """The files nano-laser loads for `lang`'s LASER3 encoder (a FLORES code it knows)."""
    from nano_laser.language_list import SPM_LANGUAGE

    files = [f"laser3-{lang}.v1.pt"]
    if lang in SPM_LANGUAGE:  # its own sentencepiece model; the others use LASER2's
        files += [f"laser3-{lang}.v1.spm", f"laser3-{lang}.v1.cvocab"]
    return files


# nano-laser's download location (LaserModelDownloader.base_url, the one laser_encoders uses; a test checks
# they agree): spelled here so that deciding LASER cannot run offline does not import nano-laser and torch
LASER_URL = "https://dl.fbaipublicfiles.com/nllb/laser"


def _fetch(url: str, target: Path, timeout: float) -> None:
    """nano-laser's download (next to the target, then renamed: an interrupted one never looks
    complete), with a timeout on connecting and on every read so a dead server cannot hang a job."""
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            while chunk := response.read(1 << 20):
                out.write(chunk)
        os.replace(temp, target)
    finally:
        if os.path.exists(temp):
            os.remove(temp)


UNREACHABLE_FOR = 600.0  # seconds a failed probe is remembered: every Verifier built meanwhile falls back at once
_unreachable: dict[str, tuple[float, str]] = {}


def _reachable(url: str, timeout: float) -> str | None:
    """None if `url` answers within `timeout` seconds, else why not. Name resolution ignores socket
    timeouts, so the request runs in a daemon thread that is abandoned when it takes too long."""
    known = _unreachable.get(url)
    if known and time.monotonic() - known[0] < UNREACHABLE_FOR:
        return known[1]
    result: list[str | None] = ["no answer within %.0f s" % timeout]

    def probe() -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout).close()
            result[0] = None
        except Exception as exc:  # any failure means: do not wait for this server
            result[0] = f"{type(exc).__name__}: {exc}"

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 1.0)
    if result[0] is not None:
        _unreachable[url] = (time.monotonic(), result[0])
    return result[0]


@dataclass
class LaserSetup:
    """Where LASER's weights are and which languages have their LASER3 encoder; `directory` None:
    LASER cannot run here, `note` says why (it goes to the Verifier's `not_run`)."""

    directory: Path | None
    laser3: set[str] = field(default_factory=set)
    note: str = ""


def laser_setup(laser_dir: str | Path | None, laser3_langs: Iterable[str], wanted: Iterable[str] | None = None,
                fetch: bool = True, base_url: str | None = None, timeout: float = CONNECT_TIMEOUT) -> LaserSetup:
    """LASER for a job. `laser3_langs`: the registry languages that have a LASER3 encoder; `wanted`:
    the languages the job scores (None: fetch only LASER2, use LASER3 where it is already cached).
    A configured `laser_dir` is used as is. Otherwise the cache, after fetching what is missing when
    `fetch` and the server answers; a language whose LASER3 file cannot be had is scored by LASER2."""
    laser3_langs = set(laser3_langs)
    if laser_dir is not None:
        return LaserSetup(Path(laser_dir), laser3_langs, f"verify.laser_dir {laser_dir}")
    directory = laser_cache()
    base = (base_url or LASER_URL).rstrip("/")
    problem = None
    if any(not (directory / f).is_file() for f in LASER2_FILES):  # LASER cannot run without LASER2
        problem = "not fetched (fetching disabled)" if not fetch else _reachable(f"{base}/{LASER2_FILES[2]}", timeout)
    if problem is None:
        wanted3 = sorted(laser3_langs & set(wanted)) if wanted is not None else []
        needed = list(LASER2_FILES) + [f for lang in wanted3 for f in laser3_files(lang)]
        missing = [f for f in needed if not (directory / f).is_file()]
        if missing and not fetch:
            problem = "not fetched (fetching disabled)"
        elif missing and (problem := _reachable(f"{base}/{LASER2_FILES[2]}", timeout)) is None:
            directory.mkdir(parents=True, exist_ok=True)
            for name in missing:
                log.info("fetching LASER weights %s into %s", name, directory)
                try:
                    _fetch(f"{base}/{name}", directory / name, timeout)
                except Exception as exc:
                    problem = f"{name}: {type(exc).__name__}: {exc}"
                    break
    else:
        wanted3 = []
    if not all((directory / f).is_file() for f in LASER2_FILES):
        return LaserSetup(None, set(), f"no LASER weights: none configured (verify.laser_dir) and {directory} lacks "
                                       f"{', '.join(f for f in LASER2_FILES if not (directory / f).is_file())} "
                                       f"({problem}); the semantic filter scores meaning instead where the preset "
                                       f"lists it")
    have3 = {lang for lang in laser3_langs if all((directory / f).is_file() for f in laser3_files(lang))}
    note = f"LASER weights in {directory}"
    if problem and set(wanted3) - have3:
        note += f"; LASER2 scores {', '.join(sorted(set(wanted3) - have3))} (LASER3 not fetched: {problem})"
    return LaserSetup(directory, have3, note)


class LaserFilter(Filter):
    name = "laser"
    default_threshold = 0.6
    survivors_only = True  # a neural encoder: sees only rows no cheaper filter rejected (pipeline.py)
    light = False  # a neural encoder: never in the driver
    description = "cosine similarity of LASER embeddings of source and candidate"

    def __init__(self, model_dir: str, laser3_langs: set[str], **kwargs):
        super().__init__(**kwargs)
        self.model_dir = str(model_dir)
        self.laser3_langs = laser3_langs
        self._encoders: dict[str, object] = {}
        self._sources: dict[str, EmbeddingMemory] = {}  # per encoder: a source is embedded once per process
        self.texts_embedded = 0  # texts this process sent through LASER

    def encoder_name(self, lang: str) -> str:
        """Which LASER scores `lang`'s rows, for the manifest."""
        return "laser3" if lang in self.laser3_langs else "laser2"

    def _key(self, lang: str | None) -> str:
        return lang if lang in self.laser3_langs else "laser2"

    def encoder(self, lang: str | None):
        """LASER3 encoder for languages that have one, the shared LASER2 encoder otherwise."""
        from nano_laser import LaserEncoderPipeline

        key = self._key(lang)
        if key not in self._encoders:
            if key == "laser2":
                self._encoders[key] = LaserEncoderPipeline(laser="laser2", model_dir=self.model_dir)
            else:
                self._encoders[key] = LaserEncoderPipeline(lang=key, model_dir=self.model_dir)
        return self._encoders[key]

    def embed(self, texts: list[str], lang: str | None) -> np.ndarray:
        self.texts_embedded += len(texts)
        return self.encoder(lang).encode_sentences(texts, normalize_embeddings=True)

    def score(self, batch: Sequence[Candidate]) -> list[float | None]:
        """Candidates embedded per language, sources per source language through the encoder's memory
        (an English source of several target languages is embedded once)."""
        out: list[float | None] = [None] * len(batch)
        rows = [i for i, c in enumerate(batch) if c.source and c.source.strip() and c.text.strip()]
        if not rows:
            return out
        cand: dict[int, np.ndarray] = {}
        src: dict[int, np.ndarray] = {}
        for lang, part in _grouped(rows, lambda i: batch[i].lang).items():
            cand.update(zip(part, self.embed([batch[i].text for i in part], lang)))
        for lang, part in _grouped(rows, lambda i: batch[i].source_lang).items():
            memory = self._sources.setdefault(self._key(lang), EmbeddingMemory())
            src.update(zip(part, memory.vectors([batch[i].source for i in part], lambda texts: self.embed(texts, lang))))
        sims = np.sum(np.stack([cand[i] for i in rows]) * np.stack([src[i] for i in rows]), axis=1)
        # float32 rounding can put the cosine of identical texts just above 1
        for i, sim in zip(rows, np.clip(sims, -1.0, 1.0)):
            out[i] = float(sim)
        return out


def _grouped(rows: list[int], key) -> dict:
    groups: dict = {}
    for i in rows:
        groups.setdefault(key(i), []).append(i)
    return groups
