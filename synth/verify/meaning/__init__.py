"""Does the candidate mean what its source means: laser.py (LASER2/3 cosine), semantic.py (offline
multilingual-e5-small cosine), roundtrip.py (chrF++ of the back-translation), embedding_memory.py
(each source embedded once per process, for both encoders)."""
