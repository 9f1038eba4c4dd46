from synth.methods.icl import pair_problem, parse_pair, strip_notes


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
    # the demo's structured English: the placeholder copied in square brackets (accepted before)
    assert pair_problem("[the new instruction]", "A JSON object with the keys") == \
        ("unparseable", "template markup left in the instruction")
    assert pair_problem("Write about {your new task} here.", "Here it is, as asked.")[0] == "unparseable"
    echo = "Daladala ya kuwa na akhiru njizu na kabili, kwa mbiliru mbiliru."
    assert pair_problem(echo, "Daladala ya kuwa na akhiru na kabili, kwa mbiliru mbiliru.")[0] == "echo"
    assert pair_problem("Taja miji mitatu ya Tanzania.", "Dodoma, Arusha na Mwanza ni miji mikubwa.") is None


def test_pivot_notes_are_dropped_before_parsing():
    text = ("### Notes\nTask: Juma is 4 years older than Hassani, who is 8. Instruction: ask Juma's age.\n"
            "Steps: 8 + 4 = 12.\n### Instruction\nHassani ana miaka 8. Juma ni mkubwa kwa miaka 4. Juma ana miaka mingapi?\n"
            "### Response\nHassani ana miaka 8, na Juma ni mkubwa kwa miaka 4, kwa hiyo 8 + 4 = 12. Juma ana miaka 12.")
    instruction, response = parse_pair(strip_notes(text))
    assert instruction.startswith("Hassani ana miaka 8.") and response.endswith("Juma ana miaka 12.")
    assert "Steps" not in instruction + response and "Task" not in instruction
    # other note headers and a bare `Instruction:` after them
    assert parse_pair(strip_notes("**Notes:** 3 x 4 = 12\nInstruction: Taja jumla ya 3 mara 4.\nResponse: 3 mara 4 ni 12.")) == (
        "Taja jumla ya 3 mara 4.", "3 mara 4 ni 12.")


def test_notes_without_a_pair_and_text_without_notes():
    assert strip_notes("### Notes\nThe instruction should ask about ugali prices in Kariakoo.") is None
    plain = "### Instruction\nTaja miji mitatu.\n### Response\nDodoma, Arusha na Mwanza."
    assert strip_notes(plain) == plain
    # small models write the header in the plural
    assert parse_pair(strip_notes("### Notes\n8 + 4 = 12\n### Instructions\nJuma ana miaka mingapi?\n### Response\nAna miaka 12.")) == (
        "Juma ana miaka mingapi?", "Ana miaka 12.")
