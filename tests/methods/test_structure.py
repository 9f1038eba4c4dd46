"""Cutting messages for translation: what reaches the model, and how the pieces come back."""

import json
from pathlib import Path

from synth.methods.structure import join_translation, number_problem, protect, restore_spans, split_message

ROOT = Path(__file__).resolve().parents[2]

MARKDOWN = (
    "# Setup\n\nInstall it with `pip install synth` or see https://example.com/docs.\n\n"
    "```bash\nsynth run job.yaml --output out/\n```\n\n"
    "- first {name}\n- [x] second with %s\n  continued\n\n"
    "| Item | Price |\n|---|---:|\n| Rice | 3 dollars |\n\n"
    "> A quote.\n\n    indented = code()\n\n---\n\nMail <b>me</b> at a.b@example.org."
)


def _sources() -> list[str]:
    lines = (ROOT / "examples" / "sources" / "en_sft.jsonl").read_text().splitlines()
    return [m["content"] for line in lines for m in json.loads(line)["messages"]]


def test_identity_translation_gives_back_every_message_byte_for_byte():
    odd = ["\n\nlead\n\n\n\nthree\n   \n tail \n\n", "```\nunclosed\ncode", "", "Just `code`", "No. Wait. " * 300]
    for text in _sources() + [MARKDOWN] + odd:
        for budget in (60, 400, 1500):
            layout = split_message(text, budget)
            joined, problems = join_translation(layout, [u.text for u in layout.units])
            assert joined == text and problems == []
            assert number_problem(layout, [u.text for u in layout.units]) is None


def test_code_and_markup_never_reach_the_model():
    layout = split_message(MARKDOWN)
    sent = "\n".join(u.text for u in layout.units)
    for kept in ("synth run job.yaml", "indented = code()", "|---|", "# ", "- ", "[x]", "> ", "---"):
        assert kept not in sent
    spans = [s for u in layout.units for s in u.spans]
    assert spans == ["`pip install synth`", "https://example.com/docs", "{name}", "%s", "<b>", "</b>", "a.b@example.org"]
    assert "Rice" in sent and "A quote." in sent and "continued" in sent


def test_a_translation_is_assembled_around_the_kept_parts():
    layout = split_message(MARKDOWN)
    upper = [u.text.upper() for u in layout.units]  # a "translation" that keeps the sentinels
    joined, problems = join_translation(layout, upper)
    assert problems == []
    assert "```bash\nsynth run job.yaml --output out/\n```" in joined
    assert "INSTALL IT WITH `pip install synth` OR SEE https://example.com/docs." in joined
    assert "- FIRST {name}\n- [x] SECOND WITH %s" in joined and "| RICE | 3 DOLLARS |" in joined


def test_lost_duplicated_and_invented_sentinels_are_named():
    text, spans = protect("Open https://example.com and run `make demo`.")
    assert text == "Open ⟦0⟧ and run ⟦1⟧." and spans == ["https://example.com", "`make demo`"]
    assert restore_spans("Fungua ⟦0⟧ na endesha ⟦ 1 ⟧.", spans) == ("Fungua https://example.com na endesha `make demo`.", None)
    _, problem = restore_spans("Fungua na endesha ⟦1⟧ ⟦1⟧ ⟦7⟧.", spans)
    assert "lost 'https://example.com'" in problem and "duplicated '`make demo`'" in problem and "⟦7⟧" in problem
    # placeholders may move, but a link or tag must still open before it closes
    text, spans = protect("See [the guide](https://x.org/g) and <b>this</b> for {a} and {b}.")
    assert restore_spans("Ona ⟦0⟧mwongozo⟦1⟧ na ⟦2⟧hii⟦3⟧ kwa ⟦5⟧ na ⟦4⟧.", spans)[1] is None
    _, problem = restore_spans("Ona ⟦1⟧mwongozo⟦0⟧ na ⟦2⟧hii⟦3⟧ kwa ⟦4⟧ na ⟦5⟧.", spans)
    assert problem == "reordered '[' after '](https://x.org/g)'"


def test_changed_numbers_are_a_problem_but_their_format_is_not():
    layout = split_message("Save 1,000 dollars at 10% for 2 years: 1,210 dollars.")
    assert number_problem(layout, ["Hifadhi dola 1000 kwa 10% kwa miaka 2: dola 1.210."]) is None
    assert number_problem(layout, ["Hifadhi dola १००० kwa 10% kwa miaka २: dola 1 210."]) is None  # native digits
    problem = number_problem(layout, ["Hifadhi dola 1000 kwa 10% kwa miaka 3: dola 1210."])
    assert problem == "numbers changed: missing 2; added 3"


def test_long_messages_are_cut_under_the_budget_and_rejoined_in_order():
    paragraphs = [f"Paragraph {chr(65 + i)} says one thing. It then says another thing at length." for i in range(6)]
    text = "\n\n".join(paragraphs) + "\n\n" + "A long sentence goes on. " * 20 + "The end."
    layout = split_message(text, budget=200)
    assert len(layout.units) == 2 + 3  # 6 short paragraphs (65 chars) in threes, the long one in 3 pieces
    assert all(len(u.text) <= 200 for u in layout.units)
    # short paragraphs share a request (context); none is split in the middle
    assert any("\n\n" in u.text for u in layout.units)
    tagged = [f"<{i}>" for i in range(len(layout.units))]
    joined, _ = join_translation(layout, tagged)
    assert [int(t) for t in __import__("re").findall(r"<(\d+)>", joined)] == list(range(len(layout.units)))
    assert joined == "<0>\n\n<1>\n\n<2> <3> <4>"  # paragraph breaks and sentence spaces kept


def test_one_line_units_stay_on_one_line():
    layout = split_message("- apples\n- pears")
    joined, _ = join_translation(layout, ["maembe\nmengi", "peari"])
    assert joined == "- maembe mengi\n- peari"


# One sentence per script, written for this test ("The children go to school every morning."), and
# what follows its mark: a space, or nothing where the script's writers put none
SENTENCES = {
    "Ethi": ("ልጆቹ በየቀኑ ጠዋት ወደ ትምህርት ቤት ይሄዳሉ።", " "),
    "Khmr": ("ក្មេងៗទៅសាលារៀនរៀងរាល់ព្រឹក។", " "),
    "Khmr (no space)": ("ក្មេងៗទៅសាលារៀនរៀងរាល់ព្រឹក។", ""),
    "Mymr": ("ကလေးများသည် နေ့တိုင်း မနက် ကျောင်းသို့ သွားကြသည်။", " "),
    "Tibt": ("ཕྲུ་གུ་ཚོ་ཉིན་རེ་བཞིན་སློབ་གྲྭར་འགྲོ།", " "),
    "Arab (question)": ("هل يذهب الأطفال إلى المدرسة كل صباح؟", " "),
    "Arab (Urdu)": ("بچے ہر صبح اسکول جاتے ہیں۔", " "),
    "Armn": ("Երեխաները ամեն առավոտ դպրոց են գնում։", " "),
    "Deva": ("बच्चे हर सुबह स्कूल जाते हैं।", " "),
    "Deva (double danda)": ("बच्चे हर सुबह स्कूल जाते हैं॥", " "),
    "Hans": ("孩子们每天早上去上学。", ""),
    "Jpan": ("子供たちは毎朝学校に行きます。", ""),
    "Latn": ("The children go to school every morning.", " "),
}


def _paragraph(sentence: str, after: str, size: int) -> str:
    sentences = [sentence] * (size // (len(sentence) + len(after)) + 1)
    return after.join(sentences)


def test_a_long_paragraph_is_cut_at_the_sentence_ends_of_every_script():
    """Amharic, Khmer, Burmese, Tibetan, Arabic-script, Armenian, Devanagari and CJK paragraphs of
    1,800-3,000 characters are cut under the budget at their own sentence marks, like English."""
    for script, (sentence, after) in SENTENCES.items():
        for size in (1800, 2880):
            text = _paragraph(sentence, after, size)
            layout = split_message(text, budget=1500)
            assert len(layout.units) >= 2, (script, size, len(text))
            assert all(len(u.text) <= 1500 for u in layout.units), script
            assert all(u.text.rstrip().endswith(sentence[-1]) for u in layout.units), script  # whole sentences
            joined, problems = join_translation(layout, [u.text for u in layout.units])
            assert joined == text and problems == [], script


def test_english_of_that_size_is_cut_into_ten():
    text = " ".join(["The children go to school every morning."] * 360)  # 14,759 characters, 36 sentences a unit
    assert len(split_message(text, budget=1500).units) == 10


def test_a_paragraph_without_sentence_marks_is_cut_at_clause_marks_then_spaces():
    thai = _paragraph("เด็กๆ ไปโรงเรียนทุกเช้า", " ", 3000)  # Thai ends sentences with a space, no mark
    clauses = _paragraph("first clause, second clause; third clause", ", ", 3000)
    for text in (thai, clauses):
        layout = split_message(text, budget=1500)
        assert len(layout.units) >= 2 and all(len(u.text) <= 1500 for u in layout.units)
        assert join_translation(layout, [u.text for u in layout.units])[0] == text
    assert all(u.text.endswith((",", ";")) for u in split_message(clauses, budget=1500).units[:-1])


def test_marks_inside_numbers_urls_and_abbreviations_do_not_cut():
    text = "Pi is 3.14 and e.g.x stays; see www.example.org/a.b now. " * 40
    layout = split_message(text.strip(), budget=300)
    assert all(u.prose.endswith("now.") for u in layout.units)
