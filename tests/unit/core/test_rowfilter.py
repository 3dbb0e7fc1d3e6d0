"""Row filters: the reader's WHERE clause for key ranges and cursor bounds (both dialects), the
cursor's text form, and the Arrow filter of sources that cannot filter in a query."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from include.replication.core.catalog import ColumnSpec, TableSpec
from include.replication.core.errors import ConfigurationError
from include.replication.core.rowfilter import (
    RowFilter,
    cursor_literal,
    filter_batches,
    format_cursor,
    parse_cursor,
    where_sql,
)
from include.replication.dialects.mssql.dialect import MSSQL
from include.replication.dialects.postgres.dialect import POSTGRES

SPEC = TableSpec(
    "Posts",
    (ColumnSpec("Id", "integer", nullable=False), ColumnSpec("LastActivityDate", "timestamp without time zone")),
    primary_key=("Id",),
)
MARK = dt.datetime(2024, 3, 1, 10, 0, 0, 123000)


def test_where_sql_combines_a_key_range_and_a_cursor_bound_for_both_dialects():
    f = RowFilter("LastActivityDate", MARK)
    assert where_sql(SPEC, POSTGRES) == ""
    assert where_sql(SPEC, POSTGRES, row_filter=f) == " WHERE \"LastActivityDate\" >= '2024-03-01T10:00:00.123'"
    assert where_sql(SPEC, MSSQL, (1, 10), f) == (
        " WHERE [Id] >= 1 AND [Id] < 10 AND [LastActivityDate] >= '2024-03-01T10:00:00.123'"
    )
    assert where_sql(SPEC, MSSQL, row_filter=RowFilter("Id", 7, inclusive=False)) == " WHERE [Id] > 7"


def test_where_sql_names_an_unknown_cursor_column():
    with pytest.raises(ConfigurationError) as info:
        where_sql(SPEC, POSTGRES, row_filter=RowFilter("Nope", 1))
    assert (info.value.table, info.value.column) == ("public.Posts", "Nope")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (42, "42"),
        (dt.datetime(2024, 3, 1), "2024-03-01T00:00:00.000"),
        (dt.datetime(2024, 3, 1, 0, 0, 0, 1), "2024-03-01T00:00:00.000001"),
        (dt.datetime(2024, 3, 1, tzinfo=dt.UTC), "2024-03-01T00:00:00.000+00:00"),
    ],
)
def test_cursor_text_round_trips(value, text):
    assert format_cursor(value) == text
    assert parse_cursor(text) == value
    assert cursor_literal(value) == (text if isinstance(value, int) else f"'{text}'")


def test_parse_cursor_reads_a_bare_date_and_refuses_garbage():
    assert parse_cursor("2024-03-01") == dt.datetime(2024, 3, 1)
    with pytest.raises(ValueError):
        parse_cursor("yesterday")
    with pytest.raises(TypeError):
        format_cursor("2024")  # type: ignore[arg-type]


def test_filter_batches_keeps_order_and_schema_and_drops_empty_batches():
    schema = pa.schema([("Id", pa.int32()), ("LastActivityDate", pa.timestamp("ms"))])
    days = [dt.datetime(2024, 3, d) for d in (1, 2, 3)]
    first = pa.record_batch([pa.array([1, 2, 3], pa.int32()), pa.array(days, pa.timestamp("ms"))], schema=schema)
    old = pa.record_batch([pa.array([4], pa.int32()), pa.array([None], pa.timestamp("ms"))], schema=schema)
    kept = list(filter_batches([first, old], RowFilter("LastActivityDate", days[1])))
    assert [b.to_pydict()["Id"] for b in kept] == [[2, 3]]
    assert kept[0].schema == schema
    assert list(filter_batches([first, old], None)) == [first, old]
    assert list(filter_batches([], RowFilter("Id", 0))) == []
