"""Stage 1 of the ISE recipe: what users want, as structured intents.

- `library`: the 10 functional domains and 131 tasks (shipped data, validated on load);
- `personas`: persona validation, dedup, the offline generator, freezing pools in the store;
- `sampler`: the seeded Persona x Domain x Task x Complexity sampler and the space's size;
- `render` / `llm_render`: template and model renderers, the request validator, the LLM
  persona generator;
- `dedup`: exact and near-duplicate detection (MinHash or embeddings);
- `generate`: the resumable sample -> render -> dedup -> record pipeline;
- `records` / `jsonl`: the intents read model and reference-schema JSONL import/export;
- `embeddings` / `metrics`: offline sentence embeddings with a digest cache; Vendi Score,
  Distinct-N and Self-BLEU (the report itself is `ise_es.projections.diversity`);
- `commands`: what the CLI commands run.
"""
