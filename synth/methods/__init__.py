"""Generation methods, attempts in and rows out: base.py (what every method produces), icl.py (in-context
learning from native seeds), translate.py (translation distillation, with back-translation),
structure.py (code, links, placeholders and numbers kept intact through translation)."""
