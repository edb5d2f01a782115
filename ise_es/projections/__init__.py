"""Read models and exports of the event log.

session      a session stream folded into what projections read
conversation the flat chat messages every trainer format starts from
formats      openai / sharegpt / middle samples (reasoning and per-turn options)
export       `project sft-jsonl`: one catch-up pass, spool, sorted atomic files
audit        rule-based findings per session and their summary
secrets      token/key/URL-password detection and redaction
stats        per-session summaries and the corpus report (Table 3 and tool analyses)
plots        PNG figures of the report
readmodel    checkpointed, incremental read models (stats summaries, audit findings)
tables       their SQLAlchemy tables (migration 0002)
openclaw     `import openclaw`: OpenClaw session JSONL into session streams
run          the entry points the CLI calls
"""
