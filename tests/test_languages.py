from synth.languages import load_registry
from synth.verify.lid import load_lid


def test_every_language_file_validates_and_codes_are_unique():
    registry = load_registry()
    assert {"swh_Latn", "tgl_Latn", "fra_Latn", "eng_Latn"} <= set(registry)
    assert len({s.iso639_3 + s.script for s in registry.values()}) == len(registry)


def test_lid_labels_exist_in_the_bundled_lid176_model():
    lid = load_lid()
    for spec in load_registry().values():
        if spec.lid_label is not None:
            assert lid.covers(spec.lid_label), spec.code
    assert not lid.covers(load_registry()["hau_Latn"].lid_label)
