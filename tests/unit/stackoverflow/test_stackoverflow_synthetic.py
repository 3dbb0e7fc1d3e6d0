"""Unit tests of the synthetic generator and of the measured figures it is built on (no database)."""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from include.replication.core.errors import ConfigurationError
from include.replication.core.typemap import arrow_schema
from include.stackoverflow.schema import LOOKUP_ROWS, PUBLISHED_ROW_COUNTS, PUBLISHED_TOTAL_ROWS, TABLES, tables
from include.stackoverflow.synthetic import GENERATED_TABLES, MEASURED, generate, row_count, row_id
from tests.conftest import dump_folders

SCALE = 0.002  # ~600 users, ~7,500 posts, ~20,000 votes


def _table(name: str, scale: float = SCALE, seed: int = 7, batch_rows: int = 5000) -> pa.Table:
    batches = list(generate(name, scale, seed, batch_rows))
    assert all(1 <= b.num_rows <= batch_rows for b in batches)
    return pa.Table.from_batches(batches, schema=arrow_schema(TABLES[name]))


@pytest.mark.parametrize("name", GENERATED_TABLES)
def test_schema_equals_catalog_schema_and_counts_follow_scale(name: str) -> None:
    t = _table(name)
    assert t.schema.equals(arrow_schema(TABLES[name]))
    assert t.num_rows == row_count(name, SCALE)
    ids = t.column("Id").to_numpy()
    assert (np.diff(ids) > 0).all()  # unique and in Id order
    for field in t.schema:
        if not field.nullable:
            assert t.column(field.name).null_count == 0, field.name


def test_same_seed_same_rows_whatever_the_batch_size_other_seed_differs() -> None:
    a = _table("Posts", batch_rows=5000)
    b = _table("Posts", batch_rows=777)
    assert a.equals(b)
    c = _table("Posts", seed=8)
    assert not a.column("Body").equals(c.column("Body"))
    assert _table("Votes").equals(_table("Votes", batch_rows=20_000))


def test_scale_arithmetic() -> None:
    assert sum(row_count(n, 1.0) for n in PUBLISHED_ROW_COUNTS) == PUBLISHED_TOTAL_ROWS == 19_310_703
    assert row_count("Votes", 0.5) == 5_071_682
    assert row_count("Votes", 1e-9) == 1  # never empty
    assert row_count("VoteTypes", 1e-6) == 15  # lookups always complete
    with pytest.raises(ConfigurationError):
        row_count("Votes", 0)
    with pytest.raises(ConfigurationError):
        list(generate("Nope", 0.001))


def test_lookup_tables_complete() -> None:
    for name in ("LinkTypes", "PostTypes", "VoteTypes", "PostHistoryTypes"):
        t = _table(name, scale=0.0001)
        assert [tuple(r.values()) for r in t.to_pylist()] == list(LOOKUP_ROWS[name])


def test_ids_have_gaps_and_community_user_exists() -> None:
    users = _table("Users")
    ids = users.column("Id").to_numpy()
    assert ids[0] == -1 and users.column("DisplayName")[0].as_py() == "Community"
    posts = _table("Posts").column("Id").to_numpy()
    gap = 1 - len(posts) / (posts.max() - posts.min() + 1)
    assert abs(gap - MEASURED["tables"]["Posts"]["gap"]) < 0.03
    # stateless: row_id of any row index equals the generated Id
    assert (row_id("Posts", np.arange(len(posts)), 7) == posts).all()


@pytest.mark.parametrize(
    ("name", "column", "parent"),
    [
        ("Posts", "OwnerUserId", "Users"),
        ("Posts", "ParentId", "Posts"),
        ("Comments", "PostId", "Posts"),
        ("Votes", "PostId", "Posts"),
        ("Votes", "UserId", "Users"),
        ("Badges", "UserId", "Users"),
        ("PostLinks", "RelatedPostId", "Posts"),
        ("PostHistory", "PostId", "Posts"),
    ],
)
def test_foreign_key_columns_point_at_existing_ids(name: str, column: str, parent: str) -> None:
    refs = _table(name).column(column).drop_null()
    assert len(refs) > 0
    assert pc.all(pc.is_in(refs, value_set=_table(parent).column("Id").combine_chunks())).as_py()


@pytest.mark.parametrize("name", ["Users", "Posts", "Comments", "Votes", "PostHistory", "Tags"])
def test_null_rates_within_tolerance_of_measured(name: str) -> None:
    t = _table(name, scale=0.004)
    for column, m in MEASURED["tables"][name]["columns"].items():
        if TABLES[name].column(column).nullable:
            rate = t.column(column).null_count / t.num_rows
            assert abs(rate - m["null"]) < 0.03, (column, rate, m["null"])


def test_text_lengths_follow_measured_log_normal() -> None:
    t = _table("Comments")
    lengths = pc.utf8_length(t.column("Text")).to_numpy(zero_copy_only=False)
    m = MEASURED["tables"]["Comments"]["columns"]["Text"]
    assert abs(np.log(lengths).mean() - m["mu"]) < 0.1
    assert lengths.max() <= 700
    body = _table("Posts").column("Body")
    assert pc.min(pc.utf8_length(body)).as_py() >= 1


def test_votes_generation_speed_at_least_200k_rows_per_second() -> None:
    t0 = time.perf_counter()
    rows = sum(b.num_rows for b in generate("Votes", 0.02, 1, 50_000))  # ~203k rows
    rate = rows / (time.perf_counter() - t0)
    assert rows == row_count("Votes", 0.02) and rate > 200_000, rate


def test_all_twelve_tables_generate() -> None:
    assert set(GENERATED_TABLES) == {t.name for t in tables(include_larger=True)}


@pytest.mark.skipif(not dump_folders(), reason="no real dumps")
def test_measured_table_matches_the_dumps() -> None:
    from include.stackoverflow.measure import measure

    assert measure(dump_folders()) == MEASURED


def test_synthetic_source_is_a_source_that_streams_by_bytes() -> None:
    from include.replication.core.errors import ConfigurationError
    from include.stackoverflow.synthetic import SyntheticSource

    with SyntheticSource(0.0005, seed=7, tables=["Posts", "Votes"]) as source:
        assert source.list_tables() == ["Posts", "Votes"]
        spec = source.describe("Posts")
        assert source.count_rows(spec) == row_count("Posts", 0.0005) and source.key_bounds(spec) is None
        # the catalog's estimate is this scale's (progress and ETA in the fill's log), not scale 1's
        assert spec.row_estimate == row_count("Posts", 0.0005) < row_count("Posts", 1.0)
        batches = list(source.read_batches(spec, batch_rows=10_000, batch_bytes=256 * 1024))
        assert sum(b.num_rows for b in batches) == row_count("Posts", 0.0005)
        assert max(b.nbytes for b in batches if b.num_rows > 1) <= 256 * 1024
        same = pa.Table.from_batches(list(generate("Posts", 0.0005, 7)))
        assert pa.Table.from_batches(batches).equals(same)  # byte-cut batches, identical rows
        with pytest.raises(ConfigurationError):
            source.describe("Users")
    with pytest.raises(ConfigurationError):
        SyntheticSource(0.001, tables=["Nope"])
