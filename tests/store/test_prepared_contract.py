"""store/prepared.py against the SQLAlchemy it is pinned to: every prepared statement the
store runs gives what `Connection.execute` gives (SQLite and PostgreSQL), and the compiler,
type and driver internals it reads are still there. An upgrade that breaks either fails here."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Connection, DateTime, Integer, bindparam, column, select, table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.compiler import SQLCompiler

from pkiforge.actor import Actor
from pkiforge.ca.audit import next_entry
from pkiforge.ca.models import CertStatus
from pkiforge.ca.registry_models import ServiceRecord
from pkiforge.store import registry_repos, repos
from pkiforge.store.db import SqlStore
from pkiforge.store.prepared import Prepared, Ran

from .helpers import NOW, ca, cert_record, certificate

MODULES = (repos, registry_repos)  # where the store keeps its prepared statements


def _prepared_in(module: ModuleType, dialect: str) -> list[Prepared]:
    """The module's prepared statements: its attributes, and the values of its dicts of them
    (those kept per dialect: `dialect`'s)."""
    found: list[Prepared] = []
    for value in vars(module).values():
        if isinstance(value, Prepared):
            found.append(value)
        elif isinstance(value, dict):
            found.extend(
                v
                for k, v in value.items()
                if isinstance(v, Prepared) and (k not in DIALECTS or k == dialect)
            )
    return found


def _as_execute_gives(conn: Connection, statement: Any, values: Mapping[str, Any]) -> Any:
    """Rows (or rowcount) and error class of `statement` through `Connection.execute`, in a
    savepoint rolled back afterwards."""
    savepoint = conn.begin_nested()
    try:
        result = conn.execute(statement, dict(values))
        if result.returns_rows:
            return ("rows", [tuple(r) for r in result.all()])
        return ("rowcount", result.rowcount)
    except DBAPIError as exc:
        return ("error", type(exc))
    finally:
        savepoint.rollback()


@pytest.fixture
def compared(monkeypatch: pytest.MonkeyPatch) -> list[Prepared]:
    """Every Prepared.run is checked against Connection.execute; returns the statements run."""
    seen: list[Prepared] = []
    real = Prepared.run

    def checked(self: Prepared, conn: Connection, values: Mapping[str, Any] | None = None) -> Ran:
        values = values or {}
        expected = _as_execute_gives(conn, self.statement, values)
        seen.append(self)
        try:
            ran = real(self, conn, values)
        except DBAPIError as exc:
            assert expected == ("error", type(exc)), self.statement
            raise
        if expected[0] == "rows":
            assert [tuple(r) for r in ran.rows] == expected[1], str(self.statement)
        elif not self.statement.is_insert:  # what an INSERT without RETURNING counts varies
            assert expected == ("rowcount", ran.rowcount), str(self.statement)
        return ran

    monkeypatch.setattr(Prepared, "run", checked)
    return seen


def _service(service_id: str, *names: str) -> ServiceRecord:
    return ServiceRecord(service_id, service_id, NOW, NOW, names=names)


def test_every_prepared_statement_gives_what_execute_gives(
    store: SqlStore, compared: list[Prepared]
) -> None:
    orders = _service("orders", "DNS:orders.internal", "DNS:*.orders.internal", "IP:10.0.0.7")
    with store.transaction() as tx:
        tx.cas.add(ca("services"))
        tx.services.add(orders)
        tx.services.add(_service("web", "DNS:web.example.internal"))
    with store.transaction() as tx:
        tx.services.update(dataclasses.replace(orders, names=("DNS:orders.internal",)))
        assert tx.services.get("orders") is not None and tx.services.get("absent") is None
        assert tx.services.owners_of(["DNS:orders.internal", "DNS:nobody.internal"]) == {
            "DNS:orders.internal": "orders"
        }
    pending = cert_record(0x1234, status=CertStatus.PENDING, not_before=None, not_after=None)
    with store.transaction() as tx:
        tx.certificates.add(pending)
    signed = dataclasses.replace(pending, status=CertStatus.ACTIVE, certificate=certificate(0x1234))
    with store.transaction() as tx:
        assert tx.certificates.activate(signed)
        assert not tx.certificates.activate(signed)  # only a pending row is activated
        assert tx.certificates.standing(0x1234) == (CertStatus.ACTIVE, signed.fingerprint)
        assert tx.certificates.standing(0x9999) is None
    for i in range(2):
        with store.transaction() as tx:
            tx.audit.add(
                next_entry(
                    tx.audit.head(),
                    at=NOW,
                    actor=Actor("operator", "t"),
                    action="test.prepared",
                    subject=f"s{i}",
                    details={"i": i, "text": "ünïcode"},
                )
            )
    with store.transaction(readonly=True) as tx:  # every size of the owners lookup
        for n in range(1, len(registry_repos._OWNERS) + 1):
            keys = {f"k{i}": k for i, k in enumerate(["DNS:web.example.internal"] * n)}
            tx.run(registry_repos._OWNERS[n], keys)
    # a taken serial inserts nothing, through both paths
    with pytest.raises(Exception, match="already exists"), store.transaction() as tx:
        tx.certificates.add(pending)
    ran, dialect = {id(p) for p in compared}, store.engine.dialect.name
    missing = [
        str(p.statement) for m in MODULES for p in _prepared_in(m, dialect) if id(p) not in ran
    ]
    assert missing == []


DIALECTS = {"sqlite": sqlite.pysqlite.dialect(), "postgresql": postgresql.psycopg.dialect()}
THINGS = table("things", column("id", Integer), column("at", DateTime()), column("doc", sa.JSON))


@pytest.mark.parametrize("name", DIALECTS)
def test_the_compiler_internals_prepared_reads_are_there(name: str) -> None:
    dialect: Dialect = DIALECTS[name]
    stmt = select(THINGS).where(THINGS.c.id == bindparam("b_id")).limit(1)
    compiled = stmt.compile(dialect=dialect, column_keys=["b_id"])
    assert isinstance(compiled, SQLCompiler)
    binds = compiled.bind_names
    assert isinstance(binds, dict)
    assert {b.key for b in binds} >= {"b_id"} and all(isinstance(n, str) for n in binds.values())
    for bind in binds:
        assert isinstance(bind, sa.BindParameter) and hasattr(bind, "effective_value")
        assert hasattr(bind, "required")
    assert isinstance(compiled.positional, bool) and isinstance(compiled.string, str)
    if compiled.positional:  # qmark (SQLite): the bind names in placeholder order
        assert list(compiled.positiontup or ()) and set(compiled.positiontup or ()) <= set(
            binds.values()
        )
    for type_ in (DateTime(), sa.JSON(), Integer()):
        impl = type_.dialect_impl(dialect)
        bind, result = impl.bind_processor(dialect), impl.result_processor(dialect, None)
        assert bind is None or callable(bind)
        assert result is None or callable(result)
    assert "dialect" in inspect.signature(DBAPIError.instance).parameters


def test_the_driver_internals_prepared_reads_are_there(store: SqlStore) -> None:
    with store.transaction(readonly=True) as tx:
        driver = tx.conn.connection.driver_connection
        assert driver is not None and callable(driver.cursor)
        error = tx.conn.dialect.loaded_dbapi.Error
        assert isinstance(error, type) and issubclass(error, Exception)
