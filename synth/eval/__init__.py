"""`synth eval`: a model answers held-out prompts per language x category x level; the answers are scored
with synth's own checks and the judge; the gaps become the next round's targets (docs/eval.md).

config.py (EVAL.yaml), items.py (the prompts loader), prepare.py (every check before an engine starts),
run.py (answering and judging in resumable slices), slices.py (the committed slices), scoring.py (a
row's score per level, the judge's and the pairwise requests), intervals.py (bootstrap), allocation.py
(gaps -> rows and methods), outputs.py (results.parquet, eval.json), report.py (report.html, the
summary), targets.py (next_targets.yaml and `synth run --targets-from`), calibrate.py (`synth calibrate
--labels`: the judge's pass marks per language).
"""
