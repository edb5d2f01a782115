"""Stage 1 of the ISE recipe: what users want, as structured intents.

- `library`: the 10 functional domains and 131 tasks (shipped data, validated on load);
- `personas`: persona validation, dedup, the offline generator, freezing pools in the store;
- `sampler`: the seeded Persona x Domain x Task x Complexity sampler and the space's size;
- `render` / `llm_render`: template and model renderers, the request validator, the LLM
  persona generator;
- `dedup`: exact and near-duplicate detection (MinHash or embeddings);
- `generate`: the resumable sample -> render -> dedup -> record pipeline;
- `records` / `jsonl`: the intents read model and reference-schema JSONL import/export;
- `embeddings`: offline sentence embeddings with a digest cache;
- `diversity`: accepted intents (or an intents file) as items of the diversity report (the
  metrics and the report are `ise_es.diversity`, below the stages);
- `commands`: what the CLI commands run.
"""
