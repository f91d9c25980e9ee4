"""The fixed-shape rows the Store hands to the layers above (commands, screens, export).

A row whose columns follow a table that grows with the schema (``SELECT *`` of a
patient or a procedure, with joined extras) stays a :data:`~sma_log.storage.db.Row`;
these are the ones whose columns are named in the query or fixed by the schema.
They are plain dicts at run time (a ``TypedDict`` only tells the type checker).
"""

from __future__ import annotations

from typing import TypedDict


class AuditEntry(TypedDict):
    """One audit log entry, decoded: a field of a record changed (old → new), by whom,
    when (:func:`sma_log.storage.auditlog.entries`); ``id`` is its number."""

    id: int
    at: str
    user: str | None
    action: str  # insert / update / delete
    table_name: str
    record_id: str
    field: str | None
    old_value: str | None
    new_value: str | None


class ContactAttempt(TypedDict):
    """One ``contact_attempts`` row: a call logged without an answer."""

    id: str
    followup_id: str
    at: str
    outcome: str
    by_user: str | None
    note: str | None
    voided_at: str | None


class PatientCode(TypedDict):
    """A patient's id, study code and creation time (:meth:`Store.patients_by_code`)."""

    id: str
    study_code: str
    created_at: str
