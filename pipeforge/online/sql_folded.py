"""PostgreSQL round trips of the SQL online store: statements folded into one query, and rollback.

A learn on PostgreSQL sends its ``BEGIN``, its statements and its
``COMMIT`` in as few round trips as it can (:class:`Folded`, used by
:meth:`pipeforge.online.sql_access.SQLAccess.folded_txn`); :func:`rollback`
ends a failed transaction on either driver without dropping the prepared
statements.
"""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .errors import StoreError

if TYPE_CHECKING:
    import sqlite3

    import psycopg

__all__ = ["Folded", "rollback"]


def rollback(conn: sqlite3.Connection | psycopg.Connection[Any]) -> None:
    """``ROLLBACK``; on PostgreSQL straight through libpq.

    psycopg answers a ``ROLLBACK`` it sees with ``DEALLOCATE ALL`` (in case
    a rolled-back ``DROP`` left stale plans), which would also drop the
    statements :class:`Folded` prepared; these connections run no DDL.
    """
    pgconn = getattr(conn, "pgconn", None)
    if pgconn is None:
        conn.execute("ROLLBACK")
        return
    result = pgconn.exec_(b"ROLLBACK")
    if result.error_message:
        raise StoreError(f"ROLLBACK failed: {result.error_message.decode(errors='replace')}")


class Folded:
    """Statements sent together in one round trip on one PostgreSQL connection.

    Values are bound by psycopg on the client (a simple query carries no
    separate parameters); statements prepared with :meth:`prepare` run as
    ``EXECUTE``, so PostgreSQL neither parses nor plans them again.
    """

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        cursor: psycopg.ClientCursor[Any],
        sql: Callable[[str], str],
    ):
        self.conn = conn
        self.cursor = cursor
        self._sql = sql
        self._prepared: dict[str, str] = {}
        self._token = uuid.uuid4().hex[:8]  # new names if the old ones were deallocated

    def prepare(self, texts: Iterable[str]) -> None:
        for text in texts:
            if text in self._prepared:
                continue
            numbered, n_params = _numbered(self._sql(text))
            name = f"pf_online_{self._token}_{len(self._prepared)}"
            self.conn.execute(f"PREPARE {name} AS {numbered}")
            params = ", ".join(["%s"] * n_params)
            self._prepared[text] = f"EXECUTE {name}({params})" if params else f"EXECUTE {name}"

    def send(
        self,
        statements: Iterable[tuple[str, Sequence[Any]]],
        *,
        begin: bool = False,
        commit: bool = False,
    ) -> list[Any]:
        """Run ``(text, params)`` statements in one round trip; with ``begin``, the first's rows."""
        parts = ["BEGIN"] if begin else []
        params: list[Any] = []
        for text, bound in statements:
            parts.append(self._prepared.get(text) or self._sql(text))
            params.extend(bound)
        if commit:
            parts.append("COMMIT")
        cursor = self.cursor
        cursor.execute("; ".join(parts), params, prepare=False)  # several statements: never
        if not begin:
            return []
        cursor.nextset()
        return cursor.fetchall()


def _numbered(sql: str) -> tuple[str, int]:
    """``sql`` with its ``%s`` placeholders numbered ``$1, $2, ...``, and how many there are."""
    count = itertools.count(1)
    numbered = re.sub(r"%s", lambda _m: f"${next(count)}", sql)
    return numbered, next(count) - 1
