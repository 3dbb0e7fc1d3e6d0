"""Generated T-SQL (catalog queries, reader SELECT, CREATE TABLE, PK, index, IDENTITY_INSERT,
CHECKIDENT, INSERT) and the SQL Server writer's executemany calls, without a server.

No SQL Server can run on this machine, so the writer tests use ``RecordingCursor``, a fake DB-API
cursor that only records ``executemany`` calls; it is used for the SQL Server writer unit tests
ONLY. Everything else here is real: pymssql's own quoting and sqlglot's tsql parser.
"""

from __future__ import annotations

import datetime as dt

import pytest

# a development package (requirements-dev.txt): `astro dev pytest` in the image skips this module
pytest.importorskip("sqlglot")
import sqlglot
from pymssql import _mssql
from sqlglot import exp

from include.replication.core.catalog import ColumnSpec, IdentitySpec, IndexSpec, TableSpec
from include.replication.core.ddl import create_table_sql, index_sql, primary_key_sql
from include.replication.core.errors import ConfigurationError, DataError, UnsupportedTypeError
from include.replication.dialects.mssql import source as src
from include.replication.dialects.mssql.convert import rows_to_batch
from include.replication.dialects.mssql.dialect import MSSQL
from include.replication.dialects.mssql.target import (
    checkident_sql,
    create_database_sql,
    create_schema_sql,
    identity_insert_sql,
    insert_sql,
    write_rows,
)


class RecordingCursor:
    """Fake DB-API cursor for the SQL Server writer unit tests only: records executemany calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[tuple[object, ...]]]] = []

    def executemany(self, operation: str, seq_of_parameters: list[tuple[object, ...]]) -> None:
        self.calls.append((operation, list(seq_of_parameters)))


def _parse(sql: str) -> exp.Expression:
    (tree,) = sqlglot.parse(sql, read="tsql")
    assert tree is not None
    return tree


def _order_spec(ncols: int = 2) -> TableSpec:
    cols = [ColumnSpec("Id", "int", nullable=False, identity=True), ColumnSpec("User", "nvarchar", length=40)]
    cols += [ColumnSpec(f"c{i}", "int") for i in range(ncols - 2)]
    return TableSpec(
        "Order", tuple(cols), schema="dbo", primary_key=("Id",), primary_key_name="PK_Order__Id",
        identity=IdentitySpec("Id", seed=1000, increment=5), dialect="mssql",
    )


def test_catalog_queries_parse_and_read_sys_views():
    for sql, views in [
        (src.TABLES_SQL, {"tables", "schemas"}),
        (src.COLUMNS_SQL, {"columns", "types"}),
        (src.IDENTITY_SQL, {"identity_columns"}),
        (src.INDEXES_SQL, {"indexes", "index_columns", "columns"}),
        (src.FOREIGN_KEYS_SQL, {"foreign_keys", "foreign_key_columns", "tables", "columns"}),
        (src.ROW_ESTIMATE_SQL, {"partitions"}),
    ]:
        bound = _mssql.substitute_params(sql, ("[dbo].[Posts]",)).decode()  # pymssql's own substitution
        tree = _parse(bound)
        tables = {(t.db, t.name) for t in tree.find_all(exp.Table)}
        assert {("sys", v) for v in views} <= tables, sql


def test_column_from_catalog_lengths_in_characters_and_max():
    row = lambda typ, ml, p=0, s=0, base=None, asm=False: ("c", base or typ, asm, typ, ml, p, s, True, False)  # noqa: E731
    assert src.column_from_catalog(row("nvarchar", 80)).length == 40
    assert src.column_from_catalog(row("nvarchar", -1)).length == -1
    assert src.column_from_catalog(row("varchar", 50)).length == 50
    assert src.column_from_catalog(row("nchar", 20)).length == 10
    assert src.column_from_catalog(row("varbinary", -1)).length == -1
    assert src.column_from_catalog(row("ntext", 16)).length == -1
    dec = src.column_from_catalog(row("decimal", 17, 38, 10))
    assert (dec.precision, dec.scale) == (38, 10)
    assert src.column_from_catalog(row("datetime2", 8, 27, 7)).precision == 7
    assert src.column_from_catalog(row("datetime", 8, 23, 3)).precision is None
    # alias type sysname resolves to its base type nvarchar through system_type_id
    assert src.column_from_catalog(("n", "nvarchar", False, "sysname", 256, 0, 0, False, False)).source_type == "nvarchar"
    # CLR type keeps its own name and is refused by the type map
    geo = src.column_from_catalog(("g", "varbinary", True, "geography", -1, 0, 0, True, False))
    assert geo.source_type == "geography"
    spec = TableSpec("Places", (geo,), schema="dbo", dialect="mssql")
    with pytest.raises(UnsupportedTypeError) as err:
        src.select_sql(spec)
    assert (err.value.table, err.value.column) == ("dbo.Places", "g") and "geography" in str(err.value)


def test_reader_select_uses_typemap_templates_and_orders_by_key():
    spec = TableSpec(
        "T]x",
        (
            ColumnSpec("Id", "int", nullable=False),
            ColumnSpec("t", "time", precision=7),
            ColumnSpec("o", "datetimeoffset", precision=7),
            ColumnSpec("x", "xml", length=-1),
            ColumnSpec("Order", "nvarchar", length=-1),
        ),
        schema="dbo", primary_key=("Id",), dialect="mssql",
    )
    sql = src.select_sql(spec)
    assert sql == (
        "SELECT [Id], DATEDIFF_BIG(NANOSECOND, CAST('00:00:00' AS time(7)), [t]) AS [t], "
        "CAST([o] AS nvarchar(34)) AS [o], CAST([x] AS nvarchar(max)) AS [x], [Order] "
        "FROM [dbo].[T]]x] ORDER BY [Id]"
    )
    tree = _parse(sql)
    assert isinstance(tree, exp.Select) and tree.args["order"] is not None
    assert tree.find(exp.Table).name == "T]x"


def test_create_table_types_lengths_identity_and_quoting():
    spec = TableSpec(
        "User",
        (
            ColumnSpec("Id", "int", nullable=False, identity=True),
            ColumnSpec("Order", "nvarchar", length=40, nullable=False),
            ColumnSpec("Body", "nvarchar", length=-1),
            ColumnSpec("a]b", "varbinary", length=-1),
            ColumnSpec("M", "money"),
            ColumnSpec("D", "datetime2", precision=7),
            ColumnSpec("R", "timestamp"),
        ),
        schema="dbo", primary_key=("Id",), identity=IdentitySpec("Id", seed=-5, increment=2), dialect="mssql",
    )
    sql = create_table_sql(spec, MSSQL, "dbo")
    assert "[Id] int IDENTITY(-5,2) NOT NULL" in sql
    assert "[Order] nvarchar(40) NOT NULL" in sql and "[Body] nvarchar(max) NULL" in sql
    assert "[a]]b] varbinary(max) NULL" in sql and "[M] money NULL" in sql
    assert "[D] datetime2(7) NULL" in sql and "[R] binary(8) NULL" in sql
    tree = _parse(sql)
    assert isinstance(tree, exp.Create) and tree.find(exp.Table).name == "User"
    names = [c.name for c in tree.find_all(exp.ColumnDef)]
    assert names == ["Id", "Order", "Body", "a]b", "M", "D", "R"]


def test_create_table_from_postgres_gets_case_sensitive_collation():
    spec = TableSpec(
        "t", (ColumnSpec("id", "integer", nullable=False), ColumnSpec("name", "character varying", length=10), ColumnSpec("doc", "text")),
        schema="public", dialect="postgresql",
    )
    from include.replication.dialects.postgres.dialect import POSTGRES

    sql = create_table_sql(spec, MSSQL, "dbo", source=POSTGRES)
    assert "COLLATE" not in create_table_sql(spec, MSSQL, "dbo", source=MSSQL)
    assert "[name] nvarchar(10) COLLATE Latin1_General_100_BIN2 NULL" in sql
    assert "[doc] nvarchar(max) COLLATE Latin1_General_100_BIN2 NULL" in sql
    assert "[id] int NOT NULL" in sql
    _parse(sql)


def test_primary_key_index_and_identity_statements():
    spec = _order_spec()
    spec = TableSpec(spec.name, spec.columns, schema="dbo", primary_key=("Id",), primary_key_name="PK_Order__Id",
                     identity=spec.identity, indexes=(IndexSpec("IX_User", ("User", "Id"), unique=True),), dialect="mssql")
    pk = primary_key_sql(spec, MSSQL, "dbo")
    assert pk == "ALTER TABLE [dbo].[Order] ADD CONSTRAINT [PK_Order__Id] PRIMARY KEY CLUSTERED ([Id])"
    _parse(pk)
    ix = index_sql(spec, spec.indexes[0], MSSQL, "dbo")
    assert ix == "CREATE UNIQUE INDEX [IX_User] ON [dbo].[Order] ([User], [Id])"
    assert isinstance(_parse(ix), exp.Create)
    on, off = identity_insert_sql("Order", "dbo", True), identity_insert_sql("Order", "dbo", False)
    assert on == "SET IDENTITY_INSERT [dbo].[Order] ON" and off.endswith("[dbo].[Order] OFF")
    assert isinstance(_parse(on), exp.Command)  # sqlglot keeps SET IDENTITY_INSERT as a raw command
    assert create_database_sql("stack]target") == "IF DB_ID(N'stack]target') IS NULL CREATE DATABASE [stack]]target]"
    assert isinstance(_parse(create_database_sql("x")), exp.IfBlock)
    _parse(create_schema_sql("o'neil"))


def test_checkident_statement_tokens():
    sql = checkident_sql("Order's", "dbo", 3729195)
    assert sql == "DBCC CHECKIDENT ('[dbo].[Order''s]', RESEED, 3729195)"  # no N prefix: Babelfish mis-parses it
    # sqlglot 30's tsql parser has no DBCC grammar; check the token stream instead
    tokens = [t.text for t in sqlglot.tokenize(sql, read="tsql")]
    assert tokens == ["DBCC", "CHECKIDENT", "(", "[dbo].[Order's]", ",", "RESEED", ",", "3729195", ")"]


def test_insert_sql_shape_and_placeholder_guard():
    sql = insert_sql("Order", "dbo", ["Id", "User"], 2)
    assert sql == "INSERT INTO [dbo].[Order] ([Id], [User]) VALUES (%s, %s), (%s, %s)"
    bound = _mssql.substitute_params(sql, (1, "a'b", 2, None)).decode()
    assert bound == "INSERT INTO [dbo].[Order] ([Id], [User]) VALUES (1, N'a''b'), (2, NULL)"
    tree = _parse(bound)
    assert isinstance(tree, exp.Insert) and len(tree.find(exp.Values).expressions) == 2
    with pytest.raises(ConfigurationError):
        insert_sql("pct%s", "dbo", ["Id"], 1)
    with pytest.raises(ConfigurationError):
        insert_sql("t", "dbo", ["Id"], 1001)


def test_write_zero_rows_makes_no_call():
    spec = _order_spec()
    cur = RecordingCursor()
    assert write_rows(cur, spec, rows_to_batch(spec, []), schema="dbo") == 0
    assert cur.calls == []


def test_write_one_row_builds_one_single_row_insert():
    spec = _order_spec()
    cur = RecordingCursor()
    assert write_rows(cur, spec, rows_to_batch(spec, [(7, "Zoë")]), schema="dbo") == 1
    assert cur.calls == [("INSERT INTO [dbo].[Order] ([Id], [User]) VALUES (%s, %s)", [(7, "Zoë")])]


@pytest.mark.parametrize("ncols", [7, 20, 300])
def test_write_chunks_respect_parameter_limit(ncols):
    spec = _order_spec(ncols)
    nrows = 2 * (2099 // ncols) + 3
    rows = [(i, f"u{i}") + tuple(range(ncols - 2)) for i in range(nrows)]
    cur = RecordingCursor()
    assert write_rows(cur, spec, rows_to_batch(spec, rows), schema="dbo") == nrows
    full, tail = cur.calls
    per = 2099 // ncols
    assert full[0].count("(%s") == per and len(full[1]) == 2
    assert all(len(p) == per * ncols <= 2099 for p in full[1])
    assert tail[0].count("(%s") == 3 and tail[1] == [tuple(v for r in rows[-3:] for v in r)]
    flat = [v for _, seq in cur.calls for p in seq for v in p]
    assert flat[::ncols] == list(range(nrows))  # every row once, in order


def test_write_one_column_chunks_at_1000_rows():
    spec = TableSpec("One", (ColumnSpec("Id", "int", nullable=False),), schema="dbo", primary_key=("Id",), dialect="mssql")
    cur = RecordingCursor()
    write_rows(cur, spec, rows_to_batch(spec, [(i,) for i in range(2500)]), schema="dbo")
    assert [(sql.count("(%s)"), len(seq)) for sql, seq in cur.calls] == [(1000, 2), (500, 1)]


def test_write_large_binary_rows_split_by_statement_bytes():
    spec = TableSpec("Blob", (ColumnSpec("Id", "int", nullable=False), ColumnSpec("b", "varbinary", length=-1)),
                     schema="dbo", primary_key=("Id",), dialect="mssql")
    rows = [(1, b"\x00" * 10), (2, b"\x01" * 600), (3, b"\x02" * 10)]
    cur = RecordingCursor()
    write_rows(cur, spec, rows_to_batch(spec, rows), schema="dbo", statement_bytes=1000)
    assert [len(seq) for _, seq in cur.calls] == [3]  # three single-row statements, one call
    assert all(isinstance(p[1], bytearray) for p in cur.calls[0][1])


def test_write_rejects_nul_and_too_long_text_with_key():
    spec = _order_spec()
    with pytest.raises(DataError) as err:
        write_rows(RecordingCursor(), spec, rows_to_batch(spec, [(1, "ok"), (2, "a\x00b")]), schema="dbo")
    assert (err.value.column, err.value.key) == ("User", 2)
    with pytest.raises(DataError) as err:
        write_rows(RecordingCursor(), spec, rows_to_batch(spec, [(3, "😀" * 21)]), schema="dbo")  # 42 UTF-16 units > 40
    assert (err.value.column, err.value.key) == ("User", 3)


def test_datetime_literal_is_language_independent_iso8601():
    spec = TableSpec("D", (ColumnSpec("Id", "int", nullable=False), ColumnSpec("d", "datetime")), schema="dbo", primary_key=("Id",), dialect="mssql")
    cur = RecordingCursor()
    write_rows(cur, spec, rows_to_batch(spec, [(1, dt.datetime(2010, 1, 13, 8, 0, 0, 3000))]), schema="dbo")
    assert cur.calls[0][1] == [(1, "2010-01-13T08:00:00.003")]
