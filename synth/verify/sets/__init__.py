"""Filters that compare a row with other texts rather than read it alone: dedup.py (exact and near
duplicates within a language, across rounds and against seeds), contamination.py (overlap with
evaluation sets)."""
