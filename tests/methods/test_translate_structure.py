"""Translation on the real tiny vLLM pool: its random weights write garbage prose, so whatever it does
to protected spans is what a careless teacher might do. Code blocks never reach it and come back
byte-identical; inline spans come back byte-identical or the row is rejected `structure_lost`."""

import json

from synth.conversations import Conversation
from synth.languages import get_language
from synth.methods.translate import TranslateMethod
from synth.plan import Attempt
from synth.prompts import load_prompts

CODE = "```bash\nls -la /tmp\n```"
INDENTED = "    print(total)"
INLINE_SPANS = ["https://example.com/start", "{name}", "`config.yaml`", "`make demo`", "%s"]
LONG = "\n\n".join(f"Step {chr(65 + i)} of the plan is short. It says what to do next and why it helps."
                   for i in range(5))

SOURCES = [
    Conversation("code", "open_qa", (
        ("user", "How do I see every file in a folder?"),
        ("assistant", f"Use the ls command:\n\n{CODE}\n\nIt prints one line per file.\n\n{INDENTED}\n\nThat is all."),
    )),
    Conversation("inline", "writing", (
        ("user", "Open https://example.com/start, then put {name} in `config.yaml`."),
        ("assistant", "- Run `make demo` at 10:30.\n- Print the result with %s."),
    )),
    Conversation("long", "reasoning", (("user", "Explain the plan."), ("assistant", LONG))),
]


def _method() -> TranslateMethod:
    prompts = load_prompts()
    languages = {code: get_language(code) for code in ("eng_Latn", "swh_Latn")}
    return TranslateMethod(prompts["translate_turn"], prompts["back_translate_turn"], languages, SOURCES,
                           "eng_Latn", seed=0, model="tiny", max_chars=200)


def test_structure_survives_a_translation_round_on_the_tiny_pool(tiny_pool):
    method = _method()
    attempts = [Attempt("swh_Latn", "translate", category, 0) for category in ("open_qa", "writing", "reasoning")]
    requests = method.requests(attempts)
    sent = json.dumps([r.messages for r in requests])
    assert "ls -la" not in sent and "print(total)" not in sent  # code blocks never reach the model
    assert not any(span in sent for span in INLINE_SPANS)  # inline spans travel as sentinels
    assert len([r for r in requests if r.id.startswith(attempts[2].id + "/t1.")]) == 3  # 5 paragraphs, 200 chars

    rows = method.rows(attempts, tiny_pool.generate(requests))
    back = method.back_requests(rows)
    method.add_back_translations(rows, tiny_pool.generate(back) if back else [])
    code, inline, long = rows
    assert [r.source_id for r in rows] == ["code", "inline", "long"]

    # nothing protected in the code row can be lost: it is accepted for verification, code intact
    assert code.error is None, code.error_detail
    answer = code.messages[1]["content"]
    assert f"\n\n{CODE}\n\n" in answer and f"\n\n{INDENTED}\n\n" in answer
    assert CODE in code.back_translation[1] and INDENTED in code.back_translation[1]
    candidate = code.candidate()  # filters read the prose only: copied code would inflate copy/round-trip
    assert "ls -la" not in candidate.text and "ls -la" not in candidate.source and "ls -la" not in candidate.back_translation

    # inline spans: byte-identical, or the row is rejected and the detail names what was lost
    text = "\n".join(m["content"] for m in inline.messages)
    for span in INLINE_SPANS:
        assert text.count(span) == 1 or (inline.error == "structure_lost" and repr(span) in inline.error_detail), (
            span, inline.error, inline.error_detail)
    assert inline.messages[1]["content"].startswith("- ") and "\n- " in inline.messages[1]["content"]
    if inline.error == "structure_lost":
        assert inline.back_translation is None  # a rejected row is not back-translated

    # the long answer went out in pieces and came back joined in order, paragraph breaks kept
    assert long.error is None, long.error_detail
    assert long.messages[1]["content"].count("\n\n") == 2
    assert len(long.back_translation) == 2
