import time

import pytest

from synth.prompts import PromptTemplate, RenderLimit, load_prompts


def test_bundled_prompts_load_and_render():
    prompts = load_prompts()
    assert {"icl_pair", "translate_turn", "back_translate_turn"} <= set(prompts)
    lang = {"name": "Swahili", "native_name": "Kiswahili", "regions": ["Kenya"], "cultural_context": "ugali"}
    messages = prompts["translate_turn"].render(source_language={"name": "English"}, language=lang, text="Hello ⟦0⟧",
                                                protected=True)
    assert messages[0]["role"] == "system" and "Swahili" in messages[-1]["content"]
    assert "Hello ⟦0⟧" in messages[-1]["content"] and "copy each marker" in messages[-1]["content"]
    plain = prompts["translate_turn"].render(source_language={"name": "English"}, language=lang, text="Hello",
                                             protected=False)
    assert "marker" not in plain[-1]["content"]  # no sentinels in the text: no instruction about them


def test_declared_variables_must_match_the_template():
    with pytest.raises(ValueError, match="declared variables"):
        PromptTemplate(name="x", method="icl", variables=["a"], user="{{ a }} {{ b }}")


def test_templates_are_sandboxed():
    template = PromptTemplate(name="x", method="icl", variables=["v"], user="{{ v.__class__.__mro__ }}")
    with pytest.raises(RenderLimit, match="SecurityError"):
        template.render(v="text")


@pytest.mark.parametrize("source, why", [
    ("{% for i in range(99999) %}{{ v }}{% endfor %}", "range of 99999 items"),
    ("{% for i in range(9999) %}{% for j in range(9999) %}{{ v }}{% endfor %}{% endfor %}", "took over"),
    ("{{ v * 10**8 }}", "repeating a sequence"),
    ("{{ v ~ (9 ** 999999) }}", "exponent"),
    ("{% for i in range(9000) %}{{ v }}{{ v }}{% endfor %}", "characters, past the limit"),
])
def test_runaway_templates_stop_at_a_limit(source, why):
    template = PromptTemplate(name="x", method="icl", variables=["v"], user=source)
    started = time.process_time()  # the limit is on CPU time: a loaded machine stretches the wall time
    with pytest.raises(RenderLimit, match=why):
        template.render(v="a" * 20)
    assert time.process_time() - started < 5
