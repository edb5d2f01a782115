"""`ise-es intents generate`: sample, render, deduplicate and record intents, resumably.

Draw `index` = 0, 1, 2, ... of (seed, pool) until `count` intents of this run are accepted.
Renders run on `workers` threads (model calls wait on the network); decisions are made in index
order on the calling thread, so the outcome does not depend on the number of workers. Each
intent's events (ModelCalls of its render, IntentSampled, IntentRendered or not, and an
IntentRejected when it is invalid or a duplicate) go to its stream in one append: a run killed
at any point leaves whole intents, and a rerun skips the indices already recorded.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ise_es.errors import ConcurrencyError
from ise_es.events import Event, IntentRejected, IntentRendered, IntentSampled
from ise_es.intents.dedup import Deduplicator
from ise_es.intents.library import Library
from ise_es.intents.personas import Persona, PersonaPool
from ise_es.intents.records import intent_stream, iter_intents
from ise_es.intents.render import Renderer, RenderOutcome, RenderSpec, make_spec
from ise_es.intents.sampler import SampledIntent, Sampler
from ise_es.store.base import EventStore

__all__ = ["GenerateReport", "generate_intents"]


@dataclass
class GenerateReport:
    target: int
    pool_id: str
    seed: int
    accepted: int = 0
    """Accepted intents of this (seed, pool), including ones recorded by earlier runs."""
    resumed: int = 0
    """Of those, how many an earlier run had already recorded."""
    duplicates: int = 0
    invalid: int = 0
    draws: int = 0
    """Indices drawn in this run (not counting skipped ones)."""
    exhausted: bool = False
    """True when `max_draws` was reached before `target`."""


Progress = Callable[[GenerateReport], None]


def _sampled_event(s: SampledIntent) -> IntentSampled:
    return IntentSampled(
        intent_id=s.intent_id,
        persona_id=s.persona_id,
        domains=s.domains,
        tasks=s.tasks,
        complexity=s.complexity,  # type: ignore[arg-type]
        tools=s.tools,
        seed=s.seed,
        pool_digest=s.pool_digest,
        pool_id=s.pool_id,
        index=s.index,
    )


def _render_all(
    renderer: Renderer, specs: Sequence[RenderSpec], pool: ThreadPoolExecutor | None
) -> list[RenderOutcome]:
    if pool is None:
        return [renderer.render(s) for s in specs]
    return list(pool.map(renderer.render, specs))


def generate_intents(
    store: EventStore,
    *,
    library: Library,
    pool: PersonaPool,
    renderer: Renderer,
    dedup: Deduplicator,
    count: int,
    seed: int,
    workers: int = 1,
    batch: int = 32,
    max_draws: int | None = None,
    progress: Progress | None = None,
) -> GenerateReport:
    """Record intents until `count` of this (seed, pool) are accepted (see the module doc).

    `dedup` should be empty: every accepted intent already in the store is loaded into it
    first, so new intents are checked against the whole corpus, not only this run.
    """
    sampler = Sampler(library, pool, seed)
    report = GenerateReport(target=count, pool_id=pool.pool_id, seed=seed)
    max_draws = max_draws if max_draws is not None else max(4 * count, count + 100)
    done_ids = _load_recorded(store, dedup, report)
    if progress is not None:
        progress(report)
    personas = pool.by_id()
    executor = ThreadPoolExecutor(max_workers=workers) if workers > 1 else None
    try:
        index = 0
        while report.accepted < count:
            # No more renders than intents still missing: model calls are the expensive part.
            want = min(batch, count - report.accepted, max_draws - report.draws)
            todo, index = _draw(sampler, library, personas, done_ids, index, want)
            if not todo:
                report.exhausted = True
                break
            outcomes = _render_all(renderer, [spec for _, spec in todo], executor)
            _decide_and_record(store, dedup, todo, outcomes, report, done_ids)
            if progress is not None:
                progress(report)
    finally:
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
    return report


def _load_recorded(store: EventStore, dedup: Deduplicator, report: GenerateReport) -> set[str]:
    """The ids of every intent already recorded; the accepted ones go into `dedup`, and those
    of the report's (seed, pool) are counted as accepted and resumed."""
    done_ids: set[str] = set()
    accepted_ids: list[str] = []
    accepted_texts: list[str] = []
    for rec in iter_intents(store):
        done_ids.add(rec.intent_id)
        if rec.status == "accepted" and rec.text is not None:
            accepted_ids.append(rec.intent_id)
            accepted_texts.append(rec.text)
            ev = rec.sampled
            if ev is not None and ev.seed == report.seed and ev.pool_id == report.pool_id:
                report.accepted += 1
    report.resumed = report.accepted
    dedup.accept_existing(accepted_ids, accepted_texts)
    return done_ids


def _draw(
    sampler: Sampler,
    library: Library,
    personas: Mapping[str, Persona],
    done_ids: set[str],
    index: int,
    want: int,
) -> tuple[list[tuple[SampledIntent, RenderSpec]], int]:
    """Up to `want` new intents drawn from `index` on, skipping recorded ones, with their
    render specs; and the next index to draw."""
    todo: list[tuple[SampledIntent, RenderSpec]] = []
    while len(todo) < want:
        s = sampler.sample(index)
        index += 1
        if s.intent_id in done_ids:
            continue
        spec = make_spec(library, personas[s.persona_id], s, sampler.rng_for(s.index))
        todo.append((s, spec))
    return todo, index


def _decide_and_record(
    store: EventStore,
    dedup: Deduplicator,
    todo: list[tuple[SampledIntent, RenderSpec]],
    outcomes: list[RenderOutcome],
    report: GenerateReport,
    done_ids: set[str],
) -> None:
    valid = [(s, o) for (s, _), o in zip(todo, outcomes, strict=True) if o.text is not None]
    verdicts = iter(
        dedup.check_batch([s.intent_id for s, _ in valid], [o.text or "" for _, o in valid])
    )
    for (s, _), outcome in zip(todo, outcomes, strict=True):
        if report.accepted >= report.target:
            # Over target within the batch: leave the rest unrecorded (a later, larger run
            # draws the same indices again and decides them the same way).
            break
        report.draws += 1
        events: list[Event] = [*outcome.model_calls, _sampled_event(s)]
        if outcome.text is None:
            report.invalid += 1
            events.append(
                IntentRejected(
                    intent_id=s.intent_id,
                    reason="invalid",
                    detail="; ".join(outcome.problems)[:2000],
                )
            )
        else:
            events.append(
                IntentRendered(
                    intent_id=s.intent_id,
                    text=outcome.text,
                    renderer=outcome.renderer,
                    model=outcome.model,
                    attempts=outcome.attempts,
                    text_digest=hashlib.sha256(outcome.text.encode()).hexdigest(),
                    problems=outcome.problems,
                )
            )
            verdict = next(verdicts)
            if verdict is not None:
                report.duplicates += 1
                events.append(
                    IntentRejected(
                        intent_id=s.intent_id,
                        reason="duplicate",
                        duplicate_of=verdict.duplicate_of,
                        similarity=round(verdict.similarity, 6),
                        detail=verdict.kind,
                    )
                )
            else:
                report.accepted += 1
        # ConcurrencyError: another process recorded this index meanwhile; its decision stands.
        with contextlib.suppress(ConcurrencyError):
            store.append(
                intent_stream(s.intent_id), events, expected_version=0, blobs=outcome.blobs
            )
        done_ids.add(s.intent_id)
