"""Diversity of a corpus of texts: the metrics (Vendi Score, Distinct-N, Self-BLEU) and the
report built from them.

Below the stages on purpose: intents (Stage 1) and projections (read models) both measure
diversity, each from its own source of texts, and neither may import the other.
`metrics` is numpy only; `report` adds msgspec and, for the plot, matplotlib (imported by
the function that draws).
"""
