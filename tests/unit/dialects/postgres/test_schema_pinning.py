"""Schema pinning: the reader's batches carry the catalog's Arrow schema, never one inferred from
the rows, so an all-NULL batch keeps its declared types."""

from __future__ import annotations

import pyarrow as pa

from include.replication.core.catalog import ColumnSpec, TableSpec
from include.replication.core.typemap import arrow_schema
from include.replication.dialects.postgres.source import PostgresSource

SPEC = TableSpec(
    name="Posts",
    dialect="postgresql",
    columns=(
        ColumnSpec("Id", "integer", nullable=False, identity=True),
        ColumnSpec("Title", "character varying", length=250),
        ColumnSpec("ClosedDate", "timestamp without time zone", precision=3),
        ColumnSpec("Bounty", "numeric", precision=19, scale=4),
        ColumnSpec("Guid", "uuid"),
        ColumnSpec("Doc", "jsonb"),
    ),
    primary_key=("Id",),
)


def test_catalog_schema_is_exact():
    assert arrow_schema(SPEC) == pa.schema(
        [
            pa.field("Id", pa.int32(), nullable=False),
            pa.field("Title", pa.string()),
            pa.field("ClosedDate", pa.timestamp("us")),
            pa.field("Bounty", pa.decimal128(19, 4)),
            pa.field("Guid", pa.uuid()),
            pa.field("Doc", pa.json_(pa.string())),
        ]
    )


def test_all_null_driver_batch_keeps_declared_types():
    """A driver that saw only NULLs reports type null for every nullable column."""
    driver = pa.RecordBatch.from_arrays(
        [pa.array([1, 2], pa.int32())] + [pa.nulls(2) for _ in range(5)],
        names=list(SPEC.column_names),
    )
    pinned = PostgresSource._pin(SPEC, arrow_schema(SPEC), driver)
    assert pinned.schema == arrow_schema(SPEC)
    assert pinned.column("Bounty").null_count == 2
    assert pinned.column("Id").to_pylist() == [1, 2]


def test_numeric_text_becomes_exact_decimal_and_jsonb_text_becomes_json():
    opaque = pa.array(["-922337203685477.5808", None, "0.0001"])
    driver = pa.RecordBatch.from_arrays(
        [pa.array([1, 2, 3], pa.int32()), pa.array(["a", None, "c"]), pa.nulls(3, pa.timestamp("us")),
         opaque, pa.nulls(3, pa.uuid()), pa.array(['{"a": 1}', None, "[]"])],
        names=list(SPEC.column_names),
    )
    pinned = PostgresSource._pin(SPEC, arrow_schema(SPEC), driver)
    import decimal

    assert pinned.column("Bounty").to_pylist() == [
        decimal.Decimal("-922337203685477.5808"), None, decimal.Decimal("0.0001")]
    assert pinned.column("Doc").type == pa.json_(pa.string())
    assert pinned.column("Doc").storage.to_pylist() == ['{"a": 1}', None, "[]"]
