"""Language ID, the `lid` and `mixed_language` filters: router.py (the fastText backend, `LidRouter`
that picks each language's backend(s), and the two filters), windows.py (the windows every backend
reads), fasttext_np.py (fastText's `predict` in numpy), cld2.py (CLD2, for languages lid.176 lacks),
hub.py (`lid_model: hf://...` models from the Hugging Face Hub); lid_accuracy.json holds the
measured accuracy `synth languages` shows (bench/lid_coverage.py writes it)."""
