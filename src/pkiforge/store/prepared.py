"""Hot statements run on the driver's cursor, with SQLAlchemy's own compilation and types.

Every issuance runs a handful of these (identity standing, service and name view, reservation,
activation, audit chain), and through `Connection.execute` most of each one's cost is
SQLAlchemy's execution context, events and result objects rather than the database's work. A
`Prepared` statement is compiled by SQLAlchemy once per dialect and keeps the dialect's bind
and result processors (JSON, SQLite's DateTime strings, psycopg's Json wrapper), so values are
converted exactly as `Connection.execute` converts them; only the bookkeeping around the cursor
is skipped. Driver errors are raised as SQLAlchemy's exceptions, as `Connection.execute` raises
them.

It reads SQLAlchemy internals (the compiler's bind names and positions, types' processors, the
driver connection), so SQLAlchemy is pinned to the minor version
tests/store/test_prepared_contract.py has checked (docs/dependencies.md).
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Dialect
from sqlalchemy.exc import DBAPIError, InvalidRequestError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True)
class Ran:
    """What a prepared statement returned: its rows (attribute access by column) and rowcount."""

    rows: list[Any]
    rowcount: int

    def first(self) -> Any:
        return self.rows[0] if self.rows else None


@dataclass(frozen=True)
class _Bind:
    name: str  # as the SQL names it
    key: str | None  # the caller's value under this key, or None: the statement's own value
    value: Any
    process: Processor


@dataclass(frozen=True)
class _Compiled:
    sql: str
    order: tuple[str, ...] | None  # bind names in placeholder order; None for named styles
    binds: tuple[_Bind, ...]
    row: Any  # a namedtuple class of the result columns, or None
    results: tuple[Processor, ...]

    def parameters(self, values: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
        params = {}
        for bind in self.binds:
            value = bind.value if bind.key is None else values[bind.key]
            if bind.process is not None and value is not None:
                value = bind.process(value)
            params[bind.name] = value
        if self.order is None:
            return params
        return tuple(params[name] for name in self.order)

    def rows(self, fetched: list[Any]) -> list[Any]:
        procs = self.results
        if not any(procs):
            return [self.row._make(r) for r in fetched]
        return [
            self.row._make(
                v if p is None or v is None else p(v) for p, v in zip(procs, r, strict=True)
            )
            for r in fetched
        ]


class Prepared:
    """A Core statement compiled once per dialect (and per set of INSERT/UPDATE keys)."""

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._compiled: dict[tuple[str, frozenset[str]], _Compiled] = {}

    def run(self, conn: Connection, values: Mapping[str, Any] | None = None) -> Ran:
        """Execute on `conn`'s driver connection inside its current transaction.

        Raises:
            sqlalchemy.exc.DBAPIError (its subclass for the driver's error), as execute() does.
        """
        values = values or {}
        dialect = conn.dialect
        key = (dialect.name, frozenset(values))
        compiled = self._compiled.get(key) or self._compile(dialect, key)
        params = compiled.parameters(values)
        dbapi = conn.connection.driver_connection
        assert dbapi is not None, "the transaction's connection is open"
        cursor = dbapi.cursor()
        try:
            cursor.execute(compiled.sql, params)
            fetched = cursor.fetchall() if cursor.description is not None else []
            return Ran(compiled.rows(fetched) if compiled.row else [], cursor.rowcount)
        except dialect.loaded_dbapi.Error as exc:
            raise DBAPIError.instance(
                compiled.sql, params, exc, dialect.loaded_dbapi.Error, dialect=dialect
            ) from exc
        finally:
            cursor.close()

    def _compile(self, dialect: Dialect, key: tuple[str, frozenset[str]]) -> _Compiled:
        compiled = self.statement.compile(dialect=dialect, column_keys=sorted(key[1]))
        assert isinstance(compiled, SQLCompiler)
        missing = sorted(b.key for b in compiled.bind_names if b.required and b.key not in key[1])
        if missing:
            raise InvalidRequestError(f"a value is required for bind parameter(s) {missing}")
        # what construct_params() would do on every call, worked out once
        binds = tuple(
            _Bind(
                name,
                bind.key if bind.key in key[1] else None,
                None if bind.key in key[1] else bind.effective_value,
                bind.type.dialect_impl(dialect).bind_processor(dialect),
            )
            for bind, name in compiled.bind_names.items()
        )
        positional = compiled.positional and compiled.positiontup
        order = tuple(compiled.positiontup or ()) if positional else None
        # a SELECT's columns, or what an INSERT/UPDATE ... RETURNING returns
        columns = getattr(self.statement, "selected_columns", None)
        if columns is None:
            columns = getattr(self.statement, "exported_columns", None)
        row: Any = None
        results: tuple[Processor, ...] = ()
        if columns is not None and len(columns) > 0:
            row = _row_class([c.key for c in columns])
            results = tuple(
                c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns
            )
        made = _Compiled(compiled.string, order, binds, row, results)
        self._compiled[key] = made
        return made


def _row_class(names: list[str]) -> Any:
    # rows answer `row.status` as SQLAlchemy's do; namedtuples are the cheapest such rows
    return namedtuple("Row", names, rename=True)
