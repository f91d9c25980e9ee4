"""Demo data: a realistic, deterministic sma-log database for looking around and benchmarks.

``write_demo(path, procedures=60, seed=1, now=...)`` writes a new database whose
contents depend only on ``seed`` and ``now`` (same inputs, identical table contents,
ULIDs included). ``sma-log --demo`` uses :func:`demo_database` for a throw-away copy.

What is in it (all invented; study codes ``DEMO-001`` …):

* patients of SMA types 1–4 with birth years, sex and motor status that fit the type,
  and a spine (Cobb angle 0–110°, axial rotation, hardware, BMI) that drives how
  hard their punctures are;
* each patient's procedures on the label's schedule (12 mg loading days 0, 14, 28, 63
  then every ~4 months; some already on maintenance; a few on the 50/28 mg high-dose
  regimen or switching to it), on weekdays in clinic hours, all in the past;
* set-ups mostly ultrasound (pre-puncture marking or real-time) with a paramedian
  approach, some midline, and fluoroscopy/CT with transforaminal access for fused
  spines; sedation mostly none;
* timelines: 1–6 attempts (more with severe scoliosis, rotation, fusion, obesity),
  redirections, bone-contact/paraesthesia/blood flags, occasional level changes,
  notes, sedation changes and an undone (voided) redirection; procedure times of
  roughly 2–30 minutes; a few failures with a reason and a fallback;
* satisfaction at 5 minutes mostly 4–5; the two most recent ended procedures (and a
  rare older one) still have the score pending;
* exactly one procedure still open, started a few minutes before ``now``;
* the follow-ups the Store schedules at each end (5-minute score due end + 5 min,
  72-hour call due end + 72 h, in UTC), as of ``now``: the 5-minute one done iff the
  procedure has its score; the 72-hour ones of the last days upcoming, due or overdue
  (some with unanswered calls, three patients always have one around today), older ones
  mostly done (satisfaction mostly 4–5, a few PDPH with onset, severity and treatment,
  some back pain; a few entered late), some "not reachable" or "declined", and a few of
  the last month left open, i.e. missed.

How it stays consistent with the app: the timeline is generated as events, and the
derived columns of ``procedures`` and the rows of ``attempts`` are computed from those
events by :func:`sma_log.domain.timeline.replay`, mapped to columns exactly as
``Store._sync_derived`` maps them (``tests/test_demo.py`` runs the Store's own
``_sync_derived`` on a demo file, and replays a demo through the Store's public
methods, and checks that nothing differs).

Speed: rows are generated in Python and written with ``executemany`` in one
``BEGIN IMMEDIATE`` transaction (in chunks), not through the per-action Store methods
(each of which is its own fsync'd transaction). 100k procedures take seconds.

Audit log: the demo writes the audit rows the app writes (issue 13: its size is a real
file's), user ``demo``, in the log's stored form (schema 5): each record inserted as the
app inserts it, then each action that brought it to its final state (the keys and
undos, with the attempts as the Store keeps them; the end, the score, the calls, the
completion or close) with the old value of each field it changed, at its instant
(:mod:`.auditrows`). A ``meta`` row ``demo`` (JSON: seed, procedures, now)
marks the file as a demo database; ``sma-log demo --force`` only ever replaces files carrying it.

Where things are: :mod:`.patients` (who, their spine and set-up, their schedule),
:mod:`.events` (a procedure's raw timeline), :mod:`.procedures` (its rows),
:mod:`.followups` (follow-ups and calls), :mod:`.generator` (the batches),
:mod:`.auditrows` (their audit rows), :mod:`.writing` (the file), :mod:`.draws` (the
seeded streams), :mod:`.columns`, :mod:`.units`. ``tests/test_demo_identical.py`` pins
the output for fixed seeds: keep the order of the random draws when changing anything
here.
"""

from __future__ import annotations

from .columns import (
    ANSWER_COLUMNS,
    ATTEMPT_COLUMNS,
    AUDIT_COLUMNS,
    CONTACT_ATTEMPT_COLUMNS,
    DEMO_USER,
    EVENT_COLUMNS,
    FOLLOWUP_COLUMNS,
    PATIENT_COLUMNS,
    PROCEDURE_COLUMNS,
)
from .events import PROCEDURE_NOTES
from .followups import CLOSE_REASONS, OTHER_EVENTS
from .patients import ASSISTANTS, OPERATORS, RECENT_DAYS_AGO
from .procedures import FAILURE_REASONS, OUTCOME_NOTES, attempt_rows, derived_columns
from .writing import (
    DEMO_FILE_NAME,
    DEMO_META_KEY,
    GENERATOR_VERSION,
    DemoRefused,
    demo_database,
    is_demo_database,
    write_demo,
)

__all__ = [
    "ANSWER_COLUMNS",
    "ASSISTANTS",
    "ATTEMPT_COLUMNS",
    "AUDIT_COLUMNS",
    "CLOSE_REASONS",
    "CONTACT_ATTEMPT_COLUMNS",
    "DEMO_FILE_NAME",
    "DEMO_META_KEY",
    "DEMO_USER",
    "EVENT_COLUMNS",
    "FAILURE_REASONS",
    "FOLLOWUP_COLUMNS",
    "GENERATOR_VERSION",
    "OPERATORS",
    "OTHER_EVENTS",
    "OUTCOME_NOTES",
    "PATIENT_COLUMNS",
    "PROCEDURE_COLUMNS",
    "PROCEDURE_NOTES",
    "RECENT_DAYS_AGO",
    "DemoRefused",
    "attempt_rows",
    "demo_database",
    "derived_columns",
    "is_demo_database",
    "write_demo",
]
