"""Splitting a table into primary-key ranges for parallel copy units."""

from __future__ import annotations

import pytest

# a development package (requirements-dev.txt): `astro dev pytest` in the image skips this module
pytest.importorskip("sqlglot")
import sqlglot

from include.replication.core.catalog import ColumnSpec, TableSpec
from include.replication.core.keyranges import integer_key, range_predicate, split_key_range
from include.replication.dialects.mssql.dialect import MSSQL
from include.replication.dialects.postgres.dialect import POSTGRES


@pytest.mark.parametrize(
    ("lo", "hi", "parts", "expected"),
    [
        (1, 100, 2, [(1, 51), (51, 101)]),
        (1, 10, 3, [(1, 4), (4, 7), (7, 11)]),
        (-1, 1, 4, [(-1, 0), (0, 1), (1, 2)]),  # fewer keys than parts: one key each
        (5, 5, 8, [(5, 6)]),
        (1, 12_496_713, 1, [(1, 12_496_714)]),
    ],
)
def test_split_covers_exactly_the_bounds(lo, hi, parts, expected):
    ranges = split_key_range(lo, hi, parts)
    assert ranges == expected
    assert ranges[0][0] == lo and ranges[-1][1] == hi + 1
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))  # contiguous, no overlap


def test_split_rejects_bad_input():
    with pytest.raises(ValueError):
        split_key_range(10, 1, 2)
    with pytest.raises(ValueError):
        split_key_range(1, 10, 0)


def test_integer_key_and_predicate():
    posts = TableSpec("Posts", (ColumnSpec("Id", "int", nullable=False), ColumnSpec("Body", "nvarchar", length=-1)),
                      schema="dbo", primary_key=("Id",), dialect="mssql")
    assert integer_key(posts) == "Id"
    pg = range_predicate(posts, (1, 51), POSTGRES)
    assert pg == '"Id" >= 1 AND "Id" < 51'
    assert sqlglot.parse_one(f"SELECT 1 FROM t WHERE {pg}", read="postgres") is not None
    assert range_predicate(posts, (1, 51), MSSQL) == "[Id] >= 1 AND [Id] < 51"
    keyed_by_text = TableSpec("Tags", (ColumnSpec("TagName", "nvarchar", length=150, nullable=False),),
                              primary_key=("TagName",), dialect="mssql")
    assert integer_key(keyed_by_text) is None
    with pytest.raises(ValueError):
        range_predicate(keyed_by_text, (1, 2), POSTGRES)
    composite = TableSpec("T", posts.columns, primary_key=("Id", "Body"), dialect="mssql")
    assert integer_key(composite) is None
