"""The `fluency` filter: filter.py (the filter, and which backend reads each language), scorer.py (the
scorer contract every backend shares), dictionary.py (Hunspell dictionaries), subword.py (XLM-R's
subword model), words.py (independent word lists and character models); their data:
fluency_checks.json, fluency_subword.json, fluency_words.json and fluency_words/ (written by the
bench/fluency_*.py scripts)."""
