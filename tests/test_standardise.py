"""Standardisation (synth/standardise.py): every rule, the protected spans, native marks, idempotence,
`synth standardise`, and the stage inside `synth verify`."""

from __future__ import annotations

import unicodedata

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from synth.cli import main
from synth.languages import load_registry
from synth.standardise import RULES, LanguageRules, StandardiseConfig, Standardiser, protected_pieces


@pytest.fixture(scope="module")
def std():
    return Standardiser(StandardiseConfig(), load_registry())


def sloppy_cp1252(text: str) -> str:
    """UTF-8 bytes read as Windows-1252 the way browsers do (WHATWG: an undefined byte is its C1 control)."""
    out = []
    for byte in text.encode("utf-8"):
        try:
            out.append(bytes([byte]).decode("cp1252"))
        except UnicodeDecodeError:
            out.append(chr(byte))
    return "".join(out)


# rule -> (language, broken text, the standardised text): one case per rule, each fixed by that rule alone
CASES = {
    "mojibake": [("fra_Latn", sloppy_cp1252("Déclaration universelle des droits de l’homme"),
                  "Déclaration universelle des droits de l’homme"),
                 ("rus_Cyrl", sloppy_cp1252("Все люди рождаются свободными"), "Все люди рождаются свободными"),
                 ("amh_Ethi", "ሰላም ነው።".encode().decode("latin-1"), "ሰላም ነው።")],
    "zawgyi": [("mya_Mymr", "မဂၤလာပါ ကြၽန္ေတာ္ ျမန္မာ လူမ်ိဳး ျဖစ္ပါတယ္", "မင်္ဂလာပါ ကျွန်တော် မြန်မာ လူမျိုး ဖြစ်ပါတယ်")],
    "line_ends": [("eng_Latn", "one\r\ntwo\rthree\u2028four", "one\ntwo\nthree\nfour")],
    "controls": [("eng_Latn", "bell\x07 and\x1b escape", "bell and escape")],
    "invisibles": [("eng_Latn", "\ufeffzero\u200bwidth soft\u00adhyphen", "zerowidth softhyphen"),
                   ("eng_Latn", "stray\u200c joiner and \u202eoverride", "stray joiner and override"),
                   ("urd_Arab", "سلام\u202bاب", "سلاماب")],  # an embedding never closed
    "nfc": [("vie_Latn", unicodedata.normalize("NFD", "Tất cả mọi người"), "Tất cả mọi người"),
            ("hin_Deva", "\u095b\u093e\u0928", "\u091c\u093c\u093e\u0928")],  # ज़ (a composition exclusion)
    "presentation_forms": [("urd_Arab", "\ufef7\ufedf\ufe8e", "لألا")],
    "letter_variants": [("prs_Arab", "كتاب ي", "کتاب ی"), ("urd_Arab", "٤٥", "۴۵")],
    "tatweel": [("urd_Arab", "پاکســتان", "پاکستان")],
    "indic_vowels": [("hin_Deva", "\u0905\u093eज", "आज"), ("pan_Guru", "\u0a72\u0a40", "\u0a08")],
    "danda": [("hin_Deva", "यह अच्छा है | वह गया ||", "यह अच्छा है । वह गया ॥")],
    "arabic_punctuation": [("urd_Arab", "یہ ٹھیک ہے, کیا? ہاں", "یہ ٹھیک ہے، کیا؟ ہاں")],
    "ethiopic_punctuation": [("amh_Ethi", "ሰላም ነው::", "ሰላም ነው።")],
    "thai_vowels": [("tha_Thai", "น\u0e4d\u0e49\u0e32", "น\u0e49\u0e33"), ("tha_Thai", "น\u0e33\u0e49", "น\u0e49\u0e33"),
                    ("tha_Thai", "\u0e40\u0e40ม่", "แม่")],
    "lao_vowels": [("lao_Laoo", "ນ\u0ecd\u0ec9\u0eb2", "ນ\u0ec9\u0eb3")],
    "khmer_vowels": [("khm_Khmr", "ស\u17d2\u179a\u17d2\u178f", "ស\u17d2\u178f\u17d2\u179a"), ("khm_Khmr", "ក\u17c1\u17b8", "កើ"),
                     ("khm_Khmr", "\u17a3", "\u17a2")],
    "vietnamese_tones": [("vie_Latn", "hòang tóan qúy gìa", "hoàng toán quý già")],
    "spaces": [("eng_Latn", "two  spaces\u2003and an em space", "two spaces and an em space"),
               ("eng_Latn", "Hello\u00a0world", "Hello world")],
}


def test_every_rule_has_a_case():
    assert set(CASES) == set(RULES)


@pytest.mark.parametrize("rule,lang,broken,clean", [(r, *c) for r, cases in CASES.items() for c in cases])
def test_each_rule_repairs_its_case(std, rule, lang, broken, clean):
    result = std.apply(broken, lang)
    assert result.text == clean and rule in result.rules
    assert std.apply(clean, lang).rules == ()  # the clean form is left alone
    skipped = Standardiser(StandardiseConfig(skip=[rule]), load_registry()).apply(broken, lang)
    assert rule not in skipped.rules and (skipped.text != clean or rule == "nfc")  # that rule did it


def test_u_fffd_left_after_repair_is_broken(std):
    assert std.apply("Habari \ufffd yako", "swh_Latn").broken
    assert not std.apply(sloppy_cp1252("Café"), "fra_Latn").broken


# Native marks of each language, in real sentences: standardising changes none of them
NATIVE = [
    ("fra_Latn", "« Bonjour\u00a0! » dit-il\u202f; c’est l’été."),
    ("deu_Latn", "„Guten Tag“, sagte sie – ‚schön‘."),
    ("eng_Latn", "The “quoted” word’s well‐known hyphen… and—dash."),
    ("hin_Deva", "यह अच्छा है। वह गया॥"),
    ("amh_Ethi", "ሰላም፡ ነው። ደህና ነህ፧"),
    ("tir_Ethi", "ሰላም፡፡ ሰላም።"),
    ("mya_Mymr", "မင်္ဂလာပါ။ နေကောင်းလား၊"),
    ("urd_Arab", "یہ ٹھیک ہے، کیا؟ ہاں۔"),
    ("prs_Arab", "می\u200cخواهم بروم؟ بله، حتماً."),
    ("tha_Thai", "น้ำ ทำ คำ"),  # SARA AM: NFKC would decompose it
    ("zho_Hans", "你好，世界！"),
    ("sin_Sinh", "ශ්\u200dරී ලංකාව"),
    ("eng_Latn", "family 👨\u200d👩\u200d👧 and ZWJ emoji"),
    ("khm_Khmr", "សួស្តី\u200bពិភពលោក"),  # ZWSP marks Khmer word boundaries
    ("eng_Latn", "1\u00a0000 and 2\u202f500"),
    ("ckb_Arab", "ئەمە ٢٠٢٤ە"),  # Sorani writes Arabic-Indic digits
    ("pbt_Arab", "ښوونځي"),  # Pashto's hard ye U+064A is a letter
]


@pytest.mark.parametrize("lang,text", NATIVE)
def test_native_marks_stay(std, lang, text):
    assert std.apply(text, lang) .text == text


def test_nfkc_only_where_a_language_opts_in():
    spec = load_registry()["tha_Thai"].model_copy(update={"standardise": LanguageRules(nfkc=True)})
    opted = Standardiser(StandardiseConfig(), {"tha_Thai": spec})
    assert opted.apply("ﬁ x² น้ำ", "tha_Thai").text == "fi x2 น้ำ"  # NFKC, asked for (SARA AM: thai_vowels rejoins it)
    assert unicodedata.normalize("NFKC", "น้ำ") != "น้ำ"  # why it is not the default
    assert Standardiser(StandardiseConfig(), load_registry()).apply("ﬁ x² น้ำ", "tha_Thai").text == "ﬁ x² น้ำ"


def test_vietnamese_tone_style():
    registry = load_registry()
    for style, expected in (("old", "hòa thủy hoàng"), ("new", "hoà thuỷ hoàng"), ("keep", "hòa thuỷ hoàng")):
        spec = registry["vie_Latn"].model_copy(update={"standardise": LanguageRules(tone_marks=style)})
        assert Standardiser(StandardiseConfig(), {"vie_Latn": spec}).apply("hòa thuỷ hòang", "vie_Latn").text == expected


def test_markdown_and_protected_spans_untouched(std):
    text = ("# Title  here\n\n- item\n    - nested  item\nhard break  \nnext\n\n```python\nx  =  'Ã©'\u200b\r\n```\n"
            "Use `a  Ã©` or {name}  and %s, see https://x.org/Ã©?a=1  now.")
    out = std.apply(text, "eng_Latn").text
    assert out == ("# Title here\n\n- item\n    - nested item\nhard break  \nnext\n\n```python\nx  =  'Ã©'\u200b\r\n```\n"
                   "Use `a  Ã©` or {name} and %s, see https://x.org/Ã©?a=1 now.")
    assert [p for p, protected in protected_pieces(text) if protected] == [
        "```python\nx  =  'Ã©'\u200b\r\n```", "`a  Ã©`", "{name}", "%s", "https://x.org/Ã©?a=1"]


def test_danda_leaves_markdown_tables(std):
    table = "| क | ख |\n|---|---|\n| ग | घ |"
    assert std.apply(table, "hin_Deva").text == table
    assert std.apply("मूल्य 5 | 6", "hin_Deva").text == "मूल्य 5 | 6"  # after a digit: not a danda


def test_counts_per_language_and_rule():
    s = Standardiser(StandardiseConfig(), load_registry())
    s.apply("a  b", "eng_Latn")
    s.apply("كتاب", "prs_Arab")
    s.apply("clean", "eng_Latn")
    assert s.manifest() == {"eng_Latn": {"spaces": 1}, "prs_Arab": {"letter_variants": 1}}
    fingerprint = s.fingerprint()
    assert fingerprint["rules"] == {name: version for name, (version, _) in RULES.items()}
    assert set(fingerprint["libraries"]) == {"ftfy", "unicodedata2", "myanmartools", "python-myanmar"}


def test_disabled_changes_nothing():
    off = Standardiser(StandardiseConfig(enabled=False), load_registry())
    assert off.apply("CafÃ©  \u200b", "fra_Latn").rules == ()


def test_unknown_rule_names_are_refused():
    with pytest.raises(ValueError, match="unknown rules"):
        StandardiseConfig(skip=["uncurl_quotes"])
    with pytest.raises(ValueError, match="unknown rules"):
        LanguageRules(skip=["nfkc_everything"])


# --- idempotence ---------------------------------------------------------------------------------

_LANGS = ["eng_Latn", "fra_Latn", "vie_Latn", "hin_Deva", "prs_Arab", "urd_Arab", "tha_Thai", "lao_Laoo", "khm_Khmr",
          "mya_Mymr", "amh_Ethi", "sin_Sinh", "rus_Cyrl"]
# random text weighted towards what the rules touch: marks, joiners, spaces, the scripts' blocks, ASCII markup
_PIECES = st.one_of(
    st.text(max_size=12),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=12),
    st.sampled_from(["  ", "\u200b", "\u200c", "\u200d", "\u00ad", "\ufeff", "\u202b", "\u202c", "\u00a0", "\r\n", "|", "||",
                     "?", ",", "::", "`", "```", "http://a.b/c ", "{x}", "%s", "\u0640", "\u0e4d", "\u0e32", "\u0e33",
                     "\u0e49", "\u0e40", "\u17c1", "\u17b8", "\u17d2\u179a", "\u17d2\u178f", "\u0905", "\u093e",
                     "\u0301", "\u0300", "\u0323", "oa", "uy", "Ã©", "â€™", "\ufef7", "ي", "ك", "၍", "ေ", "ျ", "\ufffd"]),
    st.text(alphabet=st.characters(min_codepoint=0x0900, max_codepoint=0x0DFF), max_size=6),
    st.text(alphabet=st.characters(min_codepoint=0x0E00, max_codepoint=0x0EFF), max_size=6),
    st.text(alphabet=st.characters(min_codepoint=0x1000, max_codepoint=0x109F), max_size=6),
    st.text(alphabet=st.characters(min_codepoint=0x1780, max_codepoint=0x17FF), max_size=6),
    st.text(alphabet=st.characters(min_codepoint=0x0600, max_codepoint=0x06FF), max_size=6),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pieces=st.lists(_PIECES, max_size=8), lang=st.sampled_from(_LANGS))
def test_idempotent_on_random_text(std, pieces, lang):
    once = std.apply("".join(pieces), lang).text
    assert std.apply(once, lang).text == once


@settings(max_examples=200, deadline=None)
@given(text=st.text(), lang=st.sampled_from(_LANGS))
def test_idempotent_on_any_unicode(std, text, lang):
    once = std.apply(text, lang).text
    assert std.apply(once, lang).text == once


# --- synth standardise and synth verify ---------------------------------------------------------------

SOURCE = "Everyone has the right to education. Education shall be free, at least in the elementary and fundamental stages."


def _pairs(path, texts: list[tuple[str, str]]):
    pl.DataFrame({"id": [f"r{i}" for i in range(len(texts))], "lang": [l for l, _ in texts],
                  "source_lang": ["eng_Latn"] * len(texts), "source": [SOURCE] * len(texts),
                  "text": [t for _, t in texts]}).write_parquet(path)


def test_cli_writes_standardised_text_raw_text_and_rules(tmp_path, capsys):
    source, out = tmp_path / "in.parquet", tmp_path / "out.parquet"
    _pairs(source, [("fra_Latn", sloppy_cp1252("Toute personne a droit à l’éducation.")),
                    ("prs_Arab", "هر كس حق دارد?"), ("swh_Latn", "Kila mtu ana haki ya kupata elimu.")])
    assert main(["standardise", str(source), "--output", str(out)]) == 0
    rows = pl.read_parquet(out).to_dicts()
    assert [r["text"] for r in rows] == ["Toute personne a droit à l’éducation.", "هر کس حق دارد؟",
                                         "Kila mtu ana haki ya kupata elimu."]
    assert rows[0]["raw_text"] == sloppy_cp1252("Toute personne a droit à l’éducation.") and rows[2]["raw_text"] is None
    assert [r["standardise_rules"] for r in rows] == [["mojibake"], ["letter_variants", "arabic_punctuation"], []]
    assert "2/3 rows changed" in capsys.readouterr().out
    again = tmp_path / "again.parquet"  # its own output: nothing changes, the first original is kept
    assert main(["standardise", str(out), "--output", str(again)]) == 0
    assert pl.read_parquet(again).to_dicts() == rows
    assert main(["standardise", str(source), "--output", str(out)]) == 0  # its own earlier output: replaced


def test_cli_refuses_bad_input_and_a_users_file(tmp_path, capsys):
    source = tmp_path / "in.parquet"
    _pairs(source, [("eng_Latn", "fine")])
    users = tmp_path / "mine.parquet"
    users.write_bytes(b"precious")
    assert main(["standardise", str(source), "--output", str(users)]) == 2
    assert users.read_bytes() == b"precious" and "not written by synth standardise" in capsys.readouterr().err
    pl.DataFrame({"id": ["a"], "lang": ["eng_Latn"]}).write_parquet(tmp_path / "bad.parquet")
    assert main(["standardise", str(tmp_path / "bad.parquet"), "--output", str(tmp_path / "o.parquet")]) == 2
    assert "missing columns" in capsys.readouterr().err and not (tmp_path / "o.parquet").exists()


def test_verify_standardises_before_scoring_and_rejects_lost_characters(tmp_path):
    source, out = tmp_path / "in.parquet", tmp_path / "v.parquet"
    clean = "Kila mtu ana haki ya kupata elimu. Elimu itakuwa bure, angalau katika ngazi za mwanzo na za msingi."
    _pairs(source, [("swh_Latn", clean), ("swh_Latn", sloppy_cp1252(clean).replace("Kila", "Kila\u200b ")),
                    ("swh_Latn", clean.replace("elimu", "el\ufffdmu"))])
    assert main(["verify", str(source), "--output", str(out), "--lid-skip", "swh_Latn"]) == 0
    rows = pl.read_parquet(out).to_dicts()
    assert rows[0]["accepted"] and rows[0]["raw_text"] is None and rows[0]["standardise_rules"] == []
    assert rows[1]["text"] == clean and rows[1]["standardise_rules"] == ["invisibles", "spaces"] \
        and rows[1]["raw_text"] != clean
    assert rows[1]["reject_reasons"] == ["dedup"]  # a corrupted copy is a duplicate once standardised
    assert rows[2]["reject_reasons"][0] == "encoding" and "U+FFFD" in rows[2]["reject_details"][0]


# --- synth run: seeds and sources when loaded, outputs after parsing ---------------------------------

def _demo_job(directory, preset: str | None = None):
    """The demo job with an OpenAI engine on a closed port (prepare starts none), its French seeds and
    English sources written with mojibake and zero-width spaces."""
    import json

    import yaml

    from tests.ports import free_port
    from tests.test_data_safety import EXAMPLES

    job = yaml.safe_load((EXAMPLES / "demo.yaml").read_text())
    if not any(t["lang"] == "fra_Latn" for t in job["targets"]):  # the demo's French target, seeds and all
        job["targets"].append({"lang": "fra_Latn", "rows": 6, "methods": {"icl": 0.5, "translate": 0.5},
                               "categories": ["open_qa", "reasoning", "writing"], "seeds": "seeds/fra_Latn.jsonl"})
    (directory / "seeds").mkdir(parents=True, exist_ok=True)
    for target in job["targets"]:
        lines = (EXAMPLES / target["seeds"]).read_text(encoding="utf-8").splitlines()
        if target["lang"] == "fra_Latn":
            records = [json.loads(line) for line in lines]
            for record in records:
                for message in record["messages"]:
                    message["content"] = sloppy_cp1252(message["content"])
            lines = [json.dumps(r, ensure_ascii=False) for r in records]
        (directory / target["seeds"]).write_text("\n".join(lines) + "\n", encoding="utf-8")
    (directory / "sources").mkdir(exist_ok=True)
    source = (EXAMPLES / job["sources"]["path"]).read_text(encoding="utf-8").replace("the ", "the\u200b ")
    (directory / job["sources"]["path"]).write_text(source, encoding="utf-8")
    job["engine"] = {"type": "openai", "base_url": f"http://127.0.0.1:{free_port()}/v1", "model": "m", "api_key_env": None}
    if preset:
        job["verify"]["preset"] = preset
    path = directory / "job.yaml"
    path.write_text(yaml.safe_dump(job, allow_unicode=True))
    return path


def test_run_standardises_seeds_and_sources_when_loaded(tmp_path):
    from synth.config import parse_job
    from synth.prepare import prepare

    prepared = prepare(parse_job(_demo_job(tmp_path)))
    french = [c for _, c in prepared.seeds["fra_Latn"][0].messages]
    assert all("Ã" not in text and "â€" not in text for text in french) and any("é" in t or "è" in t for t in french)
    assert all("\u200b" not in c for s in prepared.sources for _, c in s.messages)
    non_ascii = sum(not c.isascii() for s in prepared.seeds["fra_Latn"] for _, c in s.messages)  # messages it repaired
    assert prepared.standardised_inputs["fra_Latn"]["mojibake"] == non_ascii > 0
    assert prepared.standardised_inputs["eng_Latn"]["invisibles"] > 0


def test_rules_enter_the_config_hash(tmp_path):
    import yaml

    from synth.config import parse_job
    from synth.paths import data_dir
    from synth.prepare import prepare

    preset = yaml.safe_load((data_dir("filters") / "default.yaml").read_text())
    preset["standardise"] = {"skip": ["danda"]}
    (tmp_path / "skip.yaml").write_text(yaml.safe_dump(preset, allow_unicode=True))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    default = prepare(parse_job(_demo_job(tmp_path / "a")))
    skipping = prepare(parse_job(_demo_job(tmp_path / "b", preset=str(tmp_path / "skip.yaml"))))
    assert default.job.config_hash() != default.config_hash()  # the rules are in it
    assert default.config_hash() != skipping.config_hash()


def test_preset_section_is_checked(tmp_path, capsys):
    import yaml

    from synth.paths import data_dir

    preset = yaml.safe_load((data_dir("filters") / "default.yaml").read_text())
    preset["standardise"] = {"skip": ["uncurl"]}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(preset, allow_unicode=True))
    source = tmp_path / "in.parquet"
    _pairs(source, [("eng_Latn", "fine")])
    assert main(["standardise", str(source), "--output", str(tmp_path / "o.parquet"), "--filters",
                 str(tmp_path / "bad.yaml")]) == 2
    assert "unknown rules ['uncurl']" in capsys.readouterr().err


def test_model_output_standardised_after_parsing_and_lost_characters_rejected(std):
    from synth.methods.base import Row

    broken = Row(id="r", lang="fra_Latn", method="icl", category="open_qa", prompt="p", model="m",
                 messages=[{"role": "user", "content": sloppy_cp1252("Où est la gare ?")},
                           {"role": "assistant", "content": "Elle est  à droite."}])
    broken.standardise(std)
    assert [m["content"] for m in broken.messages] == ["Où est la gare ?", "Elle est à droite."]
    assert broken.raw_text == sloppy_cp1252("Où est la gare ?") + "\n\nElle est  à droite."
    assert broken.standardise_rules == ["mojibake", "spaces"] and broken.error is None
    clean = Row(id="c", lang="fra_Latn", method="icl", category="open_qa", prompt="p", model="m",
                messages=[{"role": "user", "content": "Où ?"}, {"role": "assistant", "content": "Ici."}])
    clean.standardise(std)
    assert clean.raw_text is None and clean.standardise_rules == []
    lost = Row(id="l", lang="fra_Latn", method="icl", category="open_qa", prompt="p", model="m",
               messages=[{"role": "user", "content": "Où ?"}, {"role": "assistant", "content": "Ic\ufffd."}])
    lost.standardise(std)
    assert lost.error == "encoding" and "U+FFFD" in lost.error_detail


def test_shards_carry_the_columns(tmp_path):
    from datetime import datetime, timezone

    from synth.shards import rows_frame, write_language_shards

    record = {"id": "a", "lang": "fra_Latn", "method": "icl", "category": "open_qa",
              "messages": [{"role": "user", "content": "Où ?"}, {"role": "assistant", "content": "Ici."}],
              "model": "m", "prompt": "icl_pair", "scores": {"lid": 1.0}, "created_at": datetime.now(timezone.utc),
              "accepted": True, "reject_reasons": [], "reject_details": [], "round": 1,
              "raw_text": "OÃ¹ ?\n\nIci.", "standardise_rules": ["mojibake"]}
    names = write_language_shards(tmp_path, "fra_Latn", rows_frame([record], ["lid"]), shard_rows=10)
    shard = pl.read_parquet(tmp_path / names[0]).to_dicts()[0]
    assert shard["raw_text"] == "OÃ¹ ?\n\nIci." and shard["standardise_rules"] == ["mojibake"]
    assert not {"raw_text", "standardise_rules"} & {"prompt", "completion", "chosen", "rejected", "text", "label", "images"}


def test_the_stage_imports_nothing_of_the_verifier():
    import ast
    from pathlib import Path

    import synth.standardise as module

    tree = ast.parse(Path(module.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module} | \
        {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m.startswith(("synth.verify", "synth.runner", "synth.engines"))}


def test_verify_standardises_in_its_workers_as_in_one_process(tmp_path):
    """Above PARALLEL_MIN_ROWS the forked workers standardise their chunks: same texts, raw texts,
    rules and counts as standardising in one process."""
    from synth.verify.cli_verify import verify_file
    from synth.verify.pairs import PARALLEL_MIN_ROWS

    clean = ["Toute personne a droit à l’éducation.", "Kila mtu ana haki ya kupata elimu."]
    texts = [(("fra_Latn", sloppy_cp1252(clean[0]) if i % 3 == 0 else clean[0]) if i % 2 else
              ("swh_Latn", clean[1].replace(" ", "  ") if i % 5 == 0 else clean[1])) for i in range(PARALLEL_MIN_ROWS + 100)]
    source = tmp_path / "in.parquet"
    _pairs(source, texts)
    result = verify_file(source, tmp_path / "v.parquet", lid_skip={"swh_Latn", "fra_Latn"})
    out = pl.read_parquet(tmp_path / "v.parquet")
    assert out["text"].to_list() == [clean[0] if i % 2 else clean[1] for i in range(len(texts))]
    assert main(["standardise", str(source), "--output", str(tmp_path / "s.parquet")]) == 0
    alone = pl.read_parquet(tmp_path / "s.parquet")
    assert out["raw_text"].to_list() == alone["raw_text"].to_list()
    assert out["standardise_rules"].to_list() == alone["standardise_rules"].to_list()
    assert result["standardised"] == {"fra_Latn": {"mojibake": sum(1 for i in range(len(texts)) if i % 2 and i % 3 == 0)},
                                      "swh_Latn": {"spaces": sum(1 for i in range(len(texts)) if not i % 2 and i % 5 == 0)}}
