"""translate.max_chars holds for sources in every script: a long Amharic or Khmer paragraph is sent to
the teacher as several requests, as an English one is (requests are pure: no engine needed)."""

from synth.conversations import Conversation
from synth.languages import get_language
from synth.methods.translate import TranslateMethod
from synth.plan import Attempt
from synth.prompts import load_prompts

PARAGRAPHS = {
    "amh_Ethi": " ".join(["ልጆቹ በየቀኑ ጠዋት ወደ ትምህርት ቤት ይሄዳሉ።"] * 60),  # ~1,800 characters
    "khm_Khmr": " ".join(["ក្មេងៗទៅសាលារៀនរៀងរាល់ព្រឹក។"] * 100),  # ~2,900 characters
    "mya_Mymr": " ".join(["ကလေးများသည် နေ့တိုင်း မနက် ကျောင်းသို့ သွားကြသည်။"] * 50),
    "urd_Arab": " ".join(["بچے ہر صبح اسکول جاتے ہیں۔"] * 80),
    "eng_Latn": " ".join(["The children go to school every morning."] * 60),
}


def test_requests_stay_under_max_chars_whatever_the_source_script():
    prompts = load_prompts()
    for source_lang, paragraph in PARAGRAPHS.items():
        languages = {code: get_language(code) for code in (source_lang, "swh_Latn")}
        source = Conversation("s", "open_qa", (("user", "Tell me."), ("assistant", paragraph)))
        method = TranslateMethod(prompts["translate_turn"], prompts["back_translate_turn"], languages, [source],
                                 source_lang, seed=0, model="recorded", max_chars=500)
        requests = method.requests([Attempt("swh_Latn", "translate", "open_qa", 0)])
        units = [u for layout in method.layouts(Attempt("swh_Latn", "translate", "open_qa", 0)) for u in layout.units]
        assert len(requests) == len(units) >= 1 + len(paragraph) // 500, source_lang
        assert all(len(u.text) <= 500 for u in units), source_lang
