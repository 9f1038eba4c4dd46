"""Cheap checks of form, no model: form.py (empty, truncated, repetition, length_ratio, copy),
script.py (share of letters in the expected script), alignment.py (structure_mismatch: numbers,
list items, questions, sentences and length a translation keeps)."""
