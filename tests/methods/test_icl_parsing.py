from synth.methods.icl import pair_problem, parse_pair


def test_parse_tolerates_common_shapes():
    assert parse_pair("### Instruction\nTaja miji mitatu.\n### Response\nDodoma, Arusha na Mwanza.") == (
        "Taja miji mitatu.", "Dodoma, Arusha na Mwanza.")
    assert parse_pair("**Instruction:** Taja miji.\n**Response:** Dodoma na Mwanza.") == ("Taja miji.", "Dodoma na Mwanza.")
    # a second pair that the model started is dropped
    text = "### Instruction\nA b c.\n### Response\nD e f.\n### Instruction\nG h i."
    assert parse_pair(text) == ("A b c.", "D e f.")


def test_unparseable_outputs():
    assert parse_pair("Habari za asubuhi, rafiki yangu.") is None
    assert parse_pair("### Instruction\n\n### Response\n") is None


def test_pair_problems():
    assert pair_problem("Taja miji mitatu ya Tanzania.", "### Response in English")[0] == "unparseable"
    assert pair_problem("Taja miji mitatu.", "Ndiyo.")[0] == "unparseable"
    assert pair_problem("Daladala ni ya Kariakoo kwa miaka x (the response)", "Daladala ya Kariakoo nalakira ya kwanza.")[0] == "unparseable"
    assert pair_problem("Elaborelles souhaitent les toilettes des Balmes.", "(the new response)")[0] == "unparseable"
    echo = "Daladala ya kuwa na akhiru njizu na kabili, kwa mbiliru mbiliru."
    assert pair_problem(echo, "Daladala ya kuwa na akhiru na kabili, kwa mbiliru mbiliru.")[0] == "echo"
    assert pair_problem("Taja miji mitatu ya Tanzania.", "Dodoma, Arusha na Mwanza ni miji mikubwa.") is None
