"""Bounds of the sizes and counts a user sets (job fields, command-line flags): one definition each.

A typo such as `rows: 1000000000000` or `--batch-rows 1e20` is exit 2 naming the field and its
bound, not gigabytes of planned attempts or a traceback. Light on purpose: the CLI's argument
parser reads it without importing pydantic or polars. The table is in docs/safety.md
("Hostile input files and limits").
"""

MAX_ROWS = 10_000_000  # accepted rows per target (and `synth calibrate --min-rows`)
MAX_ATTEMPTS = 20_000_000  # sum over targets of rows x plan.max_attempts_per_row: a round's plan is in memory
MAX_WEIGHT = 1e6  # a method weight (only ratios matter)
MAX_NGRAM = 64  # words per contamination n-gram (and `synth verify --ngram`)
MAX_SCALAR = 10**15  # a number compared with a dataset column (`where:` of seeds and sources)
MAX_BATCH_ROWS = 10_000_000  # `synth verify --batch-rows`: rows held in memory at a time
