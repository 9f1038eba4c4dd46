"""`synth eval`: a model answers held-out prompts per language x category x level; the answers are scored
with synth's own checks and the judge; the gaps become the next round's targets (docs/eval.md)."""
