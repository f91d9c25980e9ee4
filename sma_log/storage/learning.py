"""What the learning curves read: each ended procedure's operator and first-attempt
outcome, in start order (``sma-log learning`` and the report screen's CUSUM plot).

Ended procedures only: a start cancelled before the first skin puncture (status
``cancelled``) and the procedure in progress are not in any curve. Procedures without
an operator, or without a needle insertion (no first-attempt outcome), are left out
here, as :func:`sma_log.domain.learning.curves` would leave them out.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .analysis import Connected, iter_dicts

#: The keys of each row (those :func:`sma_log.domain.learning.curves` reads).
LEARNING_COLUMNS: tuple[str, ...] = (
    "procedure_id",
    "operator",
    "started_at",
    "attempts_n",
    "redirections_n",
    "first_attempt_success",
)

_SELECT = (
    "SELECT p.id, p.operator, substr(p.started_at, 1, 19) || 'Z', p.attempts_n, "
    "p.redirections_n, p.first_attempt_success FROM procedures p "
    "WHERE +p.status = 'ended' AND p.operator IS NOT NULL AND trim(p.operator) != '' "
    "AND p.attempts_n >= 1 AND p.first_attempt_success IS NOT NULL"
)


def iter_learning_rows(store: Connected, operator: str | None = None) -> Iterator[dict[str, Any]]:
    """One dict per charted procedure (keys :data:`LEARNING_COLUMNS`), by start time;
    only ``operator``'s when given (exact name)."""
    sql, params = _SELECT, []
    if operator is not None:
        sql += " AND p.operator = ?"
        params.append(operator)
    sql += " ORDER BY p.started_at, p.id"
    yield from iter_dicts(store.conn.execute(sql, params), list(LEARNING_COLUMNS))


def learning_operators(store: Connected) -> list[str]:
    """The operators with at least one charted procedure, by name."""
    sql = (
        "SELECT DISTINCT p.operator FROM procedures p WHERE +p.status = 'ended' "
        "AND p.operator IS NOT NULL AND trim(p.operator) != '' AND p.attempts_n >= 1 "
        "AND p.first_attempt_success IS NOT NULL ORDER BY p.operator"
    )
    return [str(r[0]) for r in store.conn.execute(sql)]
