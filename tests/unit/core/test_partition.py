"""Copy units of ``partition_as = tasks``: names, parsing them back, which tables split."""

from __future__ import annotations

import pytest

from include.replication.core.errors import ConfigurationError
from include.replication.core.partition import (
    DEFAULT_PARTITION_MIN_ROWS,
    CopyUnit,
    parse_unit,
    partition_as,
    partition_min_rows,
    range_count,
    split_tables,
    table_units,
    tables_of,
    unit_name,
)


@pytest.mark.parametrize(
    ("table", "key_range", "name"),
    [
        ("Posts", None, "Posts"),
        ("Posts", (1, 425000), "Posts[1:425000)"),
        ("dbo.Posts", (1, 2), "dbo.Posts[1:2)"),
        ("Neg", (-10, -3), "Neg[-10:-3)"),
        ("big", (0, 2**62), f"big[0:{2**62})"),
    ],
)
def test_unit_names_round_trip(table, key_range, name):
    assert unit_name(table, key_range) == name
    assert CopyUnit(table, key_range).name == name
    assert parse_unit(name) == CopyUnit(table, key_range)


def test_a_table_name_with_brackets_is_a_whole_table():
    assert parse_unit("Weird[1:2]") == CopyUnit("Weird[1:2]")
    assert parse_unit("Weird[a:b)") == CopyUnit("Weird[a:b)")
    assert parse_unit("T[x][1:5)") == CopyUnit("T[x]", (1, 5))


def test_an_empty_range_or_name_is_refused():
    with pytest.raises(ConfigurationError) as err:
        parse_unit("Posts[5:5)")
    assert err.value.table == "Posts"
    with pytest.raises(ConfigurationError):
        parse_unit("")
    with pytest.raises(ValueError):
        unit_name("Posts", (3, 2))


@pytest.mark.parametrize(
    ("rows", "parts", "min_rows", "splittable", "expected"),
    [
        (0, 4, 0, True, 1),  # empty table: one unit
        (1, 4, 0, True, 4),
        (99_999, 4, 100_000, True, 1),  # just below the minimum
        (100_000, 4, 100_000, True, 4),  # exactly the minimum
        (10**7, 1, 100_000, True, 1),  # one range wanted
        (10**7, 4, 100_000, False, 1),  # no integer key / truncate / append
        (10**7, 16, 100_000, True, 16),
    ],
)
def test_which_tables_split(rows, parts, min_rows, splittable, expected):
    assert range_count(rows, parts, min_rows, splittable=splittable) == expected


def test_table_units_cover_the_keys_exactly():
    units = table_units("Posts", (1, 10), 3)
    assert [u.name for u in units] == ["Posts[1:4)", "Posts[4:7)", "Posts[7:11)"]
    assert table_units("Posts", (5, 6), 4) == [CopyUnit("Posts", (5, 6)), CopyUnit("Posts", (6, 7))]
    assert table_units("Posts", None, 4) == [CopyUnit("Posts")]
    assert table_units("Posts", (1, 10), 1) == [CopyUnit("Posts")]


def test_params_are_validated():
    assert partition_as(None) == "threads"
    assert partition_as({"partition_as": "tasks"}) == "tasks"
    assert partition_min_rows({}) == DEFAULT_PARTITION_MIN_ROWS == 100_000
    assert partition_min_rows({"partition_min_rows": "10"}) == 10
    with pytest.raises(ConfigurationError):
        partition_as({"partition_as": "processes"})
    with pytest.raises(ConfigurationError):
        partition_min_rows({"partition_min_rows": -1})
    with pytest.raises(ConfigurationError):
        partition_min_rows({"partition_min_rows": "many"})


def test_tables_and_split_tables_of_units():
    units = ["Posts[1:5)", "Posts[5:9)", "Tags", "dbo.Votes[0:3)", "Users"]
    assert tables_of(units) == ["Posts", "Tags", "dbo.Votes", "Users"]
    assert split_tables(units) == ["Posts", "dbo.Votes"]
    assert tables_of([]) == split_tables([]) == split_tables(["Tags", "Users"]) == []
