"""Source ids come from the user's records and are not checked unique: two sources sharing one must
still each be cut and reassembled from their own text (no engine needed: requests and rows are pure)."""

from synth.conversations import Conversation
from synth.engines.base import Completion
from synth.languages import get_language
from synth.methods.translate import TranslateMethod
from synth.plan import Attempt
from synth.prompts import load_prompts

CODE = "```python\nprint(sum(range(10)))\n```"
SOURCES = [
    Conversation("dup", "open_qa", (("user", "Why does it rain?"),
                                    ("assistant", "Warm air rises, cools and its water falls as drops."))),
    Conversation("dup", "open_qa", (("user", "How do I add the numbers below ten in Python?"),
                                    ("assistant", f"Sum a range:\n\n{CODE}\n\nIt prints the total."))),
]


def test_sources_sharing_an_id_keep_their_own_layouts():
    prompts = load_prompts()
    languages = {code: get_language(code) for code in ("eng_Latn", "swh_Latn")}
    method = TranslateMethod(prompts["translate_turn"], prompts["back_translate_turn"], languages, SOURCES,
                             "eng_Latn", seed=0, model="recorded")
    attempts = [Attempt("swh_Latn", "translate", "open_qa", i) for i in range(2)]
    assert {method.source(a).first("user") for a in attempts} == {s.first("user") for s in SOURCES}
    for a in attempts:  # each attempt asks for its own source's prose
        sent = "\n".join(r.messages[-1]["content"] for r in method.requests([a]))
        assert method.source(a).first("user") in sent
    requests = method.requests(attempts)
    rows = method.rows(attempts, [Completion(r.id, text="Maandishi yaliyotafsiriwa.", finish_reason="stop")
                                  for r in requests])
    for a, row in zip(attempts, rows):
        assert row.error is None, row.error_detail
        has_code = CODE in method.source(a).messages[1][1]
        assert (CODE in row.messages[1]["content"]) == has_code  # the code block of its own source, only
