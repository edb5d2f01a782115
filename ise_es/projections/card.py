"""The dataset card (`README.md`) of an `hf-dataset` folder: YAML front matter the Hub reads,
and a body generated from the store.

Front matter: `configs` (one `default` config, `data_files` per split), `dataset_info`
(features in the Hub's notation, generated from the same Arrow schema the Parquet files are
written with, and each split's row count), `size_categories`, `task_categories`, `tags`, and
`license`. The license is the user's to choose: ise-es cannot know the terms of the models,
intents and tool outputs in a corpus, so without `--license` the card says `license: other`
with a comment asking for the real one.

Body: what a row is and how to read its JSON columns, the paper's Table 3 over the kept
trajectories (the same figures `project stats --json` reports for that selection), tool shares
and the figures, and how the data was made (ise-es version, models per role, sandboxes,
templates with digests, filters and what they skipped, audit rates, replay determinism).
Nothing in it depends on the clock, so an unchanged store gives an unchanged card.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import yaml

from ise_es.projections.folder import ise_es_version
from ise_es.projections.hfrows import JSON_COLUMNS, arrow_schema, features_yaml

if TYPE_CHECKING:
    from ise_es.projections.hfdataset import Figures, HfOptions, HfReport, Provenance

__all__ = ["render_card", "size_category", "table3_rows"]

LICENSE_NOTE = (
    "# license: replace `other` with the license of this corpus (ise-es cannot know the terms\n"
    "# of the models, intents and tool outputs in it), or pass --license to hf-dataset.\n"
)
ROW_KINDS = {
    "openai": "`messages` (OpenAI chat messages with `tool_calls`) and `tools`, as OpenAI "
    "fine-tuning and TRL read them",
    "sharegpt": "`conversations` (human / gpt / function_call / observation), `system` and "
    "`tools`, as LLaMA-Factory's sharegpt format reads them",
    "middle": "the ISE reference middle format (messages, tools, intents and metadata)",
}


def size_category(rows: int) -> str:
    """The Hub's size bucket for `rows` examples."""
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K")]
    bounds += [(1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M")]
    for bound, name in bounds:
        if rows < bound:
            return name
    return "n>1T" if rows > 10**12 else "100M<n<1B"


def _front_matter(options: HfOptions, report: HfReport) -> str:
    fmt = options.export.render.format
    splits = [s for s, rows in report.splits.items() if rows]  # datasets refuses empty ones
    arrow = {s: sum(f.arrow_bytes for f in report.files if f.split == s) for s in splits}
    meta: dict[str, Any] = {
        "pretty_name": "ise-es agent trajectories",
        "task_categories": ["text-generation"],
        "tags": ["agent", "tool-use", "trajectories", "sft", "synthetic", "ise-es", fmt],
        "size_categories": [size_category(report.rows)],
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": s, "path": f"data/{s}-*"} for s in splits],
            }
        ],
        "dataset_info": {
            "features": features_yaml(arrow_schema(fmt)),
            "splits": [
                {"name": s, "num_bytes": arrow[s], "num_examples": report.splits[s]} for s in splits
            ],
            "download_size": sum(f.bytes for f in report.files),
            "dataset_size": sum(arrow.values()),
        },
    }
    body = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=100)
    if options.license:
        license_block = f"license: {options.license}\n"
    else:
        license_block = LICENSE_NOTE + "license: other\n"
    return f"---\n{license_block}{body}---\n"


def table3_rows(figures: Figures) -> list[tuple[str, str]]:
    """Table 3's figures as (label, value) rows; the values are `project stats --json`'s
    numbers, printed exactly (tests compare them)."""
    s, c = figures.selection, figures.corpus
    return [
        ("trajectories", str(s.trajectories)),
        ("unique intents", str(s.unique_intents)),
        ("complete trajectories (corpus)", str(c.complete_trajectories)),
        ("ended sessions (corpus)", str(c.ended_sessions)),
        ("completion rate (corpus)", f"{c.completion_rate:.4f}"),
        ("user turns avg", f"{s.user_turns.avg:g}"),
        ("user turns median", f"{s.user_turns.median:g}"),
        ("user turns max", str(s.user_turns.max)),
        ("share with 6-10 user turns", f"{s.share_6_to_10_user_turns:.4f}"),
        ("dialogue turns avg", f"{s.dialogue_turns.avg:g}"),
        ("dialogue turns max", str(s.dialogue_turns.max)),
        ("tool calls per trajectory", f"{s.tool_calls.avg:g}"),
        ("unique tools per trajectory", f"{s.unique_tools.avg:g}"),
        ("think tags per trajectory", f"{s.think_tags.avg:g}"),
        ("domains per intent", f"{s.domains_avg:g}"),
        ("tasks per intent", f"{s.tasks_avg:g}"),
        ("tools per intent", f"{s.tools_avg:g}"),
        ("total tool calls", str(s.total_tool_calls)),
        ("failed tool calls", str(s.failed_calls)),
        ("recovered tool calls", str(s.recovered_calls)),
    ]


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return out


def _loading(options: HfOptions) -> list[str]:
    fmt = options.export.render.format
    columns = JSON_COLUMNS[fmt] or ("tools",)
    unit = "one user turn" if options.export.render.samples == "per-turn" else "one trajectory"
    return [
        "## Loading",
        "",
        "```python",
        "import json",
        "from datasets import load_dataset",
        "",
        'ds = load_dataset("path/to/this/folder")',
        'row = ds["train"][0]',
        f'tools = json.loads(row["{columns[0]}"])',
        "```",
        "",
        f"Each row is {unit} in the `{fmt}` format: {ROW_KINDS[fmt]}.",
        "Columns holding JSON text (decode them with `json.loads`): "
        + ", ".join(f"`{c}`" for c in columns)
        + "; every `tool_calls[].function.arguments` is the JSON string the model emitted. "
        "A message key a message does not have is null.",
        "",
    ]


def _statistics(figures: Figures, plots: list[str]) -> list[str]:
    s = figures.selection
    out = ["## Statistics (Table 3)", ""]
    out += _table(("figure", "value"), table3_rows(figures))
    out += ["", "Tool shares of all tool calls:", ""]
    out += _table(
        ("tool", "share"), [(name, f"{100 * v:.1f}%") for name, v in s.tool_shares.items()]
    )
    if s.top_trigrams:
        out += ["", "Most frequent tool-call trigrams:", ""]
        out += _table(("trigram", "count"), [("-".join(t), str(n)) for t, n in s.top_trigrams])
    out.append("")
    out += [f"![{name.removesuffix('.png').replace('_', ' ')}]({name})" for name in plots]
    return [*out, ""]


def _made(options: HfOptions, report: HfReport, figures: Figures, prov: Provenance) -> list[str]:
    export, render = options.export, options.export.render
    out = [
        "## How it was made",
        "",
        f"Exported by ise-es {ise_es_version()} (`ise-es project hf-dataset`) at store "
        f"position {report.position}.",
        "",
        "Models per role (sessions):",
        "",
    ]
    out += _table(
        ("role", "backend", "model", "sessions"),
        [(*k.split(" ", 2), str(v)) for k, v in prov.models.items()],
    )
    out += ["", "Sandboxes and workspace templates (sessions):", ""]
    out += _table(("sandbox", "sessions"), [(k, str(v)) for k, v in prov.sandboxes.items()])
    out.append("")
    out += _table(
        ("template", "digest", "sessions"),
        [(*k.split(" ", 1), str(v)) for k, v in prov.templates.items()],
    )
    sources = ", ".join(f"{k} ({v})" for k, v in prov.sources.items())
    out += ["", f"Recorded or imported by: {sources}", ""]
    split = ", ".join(f"{k}={v:g}" for k, v in (export.split or {}).items()) or "none"
    out += [
        "Selection:",
        "",
        f"- status: `{export.status}`; clean (drop audit-flagged): {export.clean}; "
        f"min user turns: {export.min_user_turns}",
        f"- split: {split} (seed {export.seed}); secrets redacted: {render.redact}",
        f"- format `{render.format}`, reasoning `{render.reasoning}`, samples `{render.samples}`"
        f", malformed tool-call arguments `{render.malformed}`",
        f"- {report.sessions_exported} of {report.sessions_considered} ended sessions kept"
        + (
            "; skipped: " + ", ".join(f"{v} {k}" for k, v in report.skipped.items())
            if report.skipped
            else ""
        ),
        "",
        "Audits of the kept trajectories (`ise-es project audit` rules):",
        "",
    ]
    out += [f"- {line}" for line in figures.audits.lines()]
    s = figures.selection
    if s.replays:
        out.append(
            f"- replay determinism: {100 * (s.determinism_rate or 0):.2f}% over {s.replays} "
            "replays of kept sessions"
        )
    else:
        out.append("- replay determinism: no kept session was replayed (`ise-es replay`)")
    out += ["", "Every file, with its sha256 and row count, is listed in `manifest.json`.", ""]
    return out


def render_card(
    options: HfOptions,
    report: HfReport,
    figures: Figures,
    provenance: Provenance,
    plots: list[str],
) -> str:
    lines = [
        "# ise-es agent trajectories",
        "",
        f"{report.rows} rows from {report.sessions_exported} agent sessions recorded with "
        "ise-es: every tool call ran for real in a sandbox (unless "
        "the sessions were imported, as the provenance below says), and its result is "
        "exactly what the agent saw.",
        "",
        *_loading(options),
        *_statistics(figures, plots),
        *_made(options, report, figures, provenance),
    ]
    return _front_matter(options, report) + "\n" + "\n".join(lines)
