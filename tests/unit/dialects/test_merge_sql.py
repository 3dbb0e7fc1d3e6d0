"""The upsert SQL of the ``merge`` mode, both dialects: the PostgreSQL ``INSERT ... ON CONFLICT``,
the ``MERGE`` text Microsoft SQL Server gets (parsed by sqlglot's tsql dialect), and the
``UPDATE`` + ``INSERT`` pair Babelfish runs instead (it refuses ``MERGE``); plus the merge mode's
pure helpers (cursor check, staging spec, window start, params)."""

from __future__ import annotations

import datetime as dt

import pytest

from include.replication.core.catalog import ColumnSpec, IdentitySpec, IndexSpec, TableSpec
from include.replication.core.errors import ConfigurationError
from include.replication.core.incremental import cursor_column, merge_lag_seconds, table_mode
from include.replication.core.merge import check_cursor, stage_spec, window_start
from include.replication.dialects.mssql.merge import differs_sql, insert_sql, merge_batch_sql, merge_sql, update_sql
from include.replication.dialects.postgres.merge import upsert_sql

POSTS = TableSpec(
    "Posts",
    (
        ColumnSpec("Id", "integer", nullable=False, identity=True),
        ColumnSpec("Title", "character varying", length=250),
        ColumnSpec("Score", "integer", nullable=False),
        ColumnSpec("LastActivityDate", "timestamp without time zone", precision=3),
        ColumnSpec("Shout", "text", generated="upper(\"Title\")"),
    ),
    primary_key=("Id",),
    identity=IdentitySpec("Id", 1, 1),
    indexes=(IndexSpec("ix_Posts_Score", ("Score",)),),
)


def _sqlglot():
    """sqlglot (a dev package: the deployed image has none, and these tests then skip)."""
    return pytest.importorskip("sqlglot")


KEYS_ONLY = TableSpec("PostTags", (ColumnSpec("PostId", "integer", nullable=False), ColumnSpec("TagId", "integer", nullable=False)),
                      primary_key=("PostId", "TagId"))


def test_postgres_upsert_updates_only_rows_that_differ_and_counts_inserted_against_updated():
    sqlglot = _sqlglot()
    exp = sqlglot.exp
    sql = upsert_sql(POSTS, "public", "Posts", "Posts__merge")
    assert sql == (
        'WITH merged AS (INSERT INTO "public"."Posts" AS d ("Id", "Title", "Score", "LastActivityDate") '
        'SELECT "Id", "Title", "Score", "LastActivityDate" FROM "public"."Posts__merge" '
        'ON CONFLICT ("Id") DO UPDATE SET "Title" = EXCLUDED."Title", "Score" = EXCLUDED."Score", '
        '"LastActivityDate" = EXCLUDED."LastActivityDate" '
        'WHERE ROW(d."Title", d."Score", d."LastActivityDate") IS DISTINCT FROM '
        'ROW(EXCLUDED."Title", EXCLUDED."Score", EXCLUDED."LastActivityDate") '
        "RETURNING (xmax = 0) AS inserted) "
        "SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM merged"
    )
    assert isinstance(sqlglot.parse_one(sql, read="postgres"), exp.Select)
    assert 'ON CONFLICT ("PostId", "TagId") DO NOTHING' in upsert_sql(KEYS_ONLY, "public", "PostTags", "s")


def test_sql_server_gets_one_merge_statement_that_tsql_parses():
    sqlglot = _sqlglot()
    exp = sqlglot.exp
    sql = merge_sql(POSTS, "dbo", "Posts", "Posts__merge", output="@merged")
    parsed = sqlglot.parse_one(sql, read="tsql")
    assert isinstance(parsed, exp.Merge)
    assert sql.startswith("MERGE INTO [dbo].[Posts] WITH (HOLDLOCK) AS d USING [dbo].[Posts__merge] AS x ON d.[Id] = x.[Id] ")
    assert " WHEN MATCHED AND ((d.[Title] <> x.[Title] OR (d.[Title] IS NULL AND x.[Title] IS NOT NULL) OR " in sql
    assert "THEN UPDATE SET [Title] = x.[Title], [Score] = x.[Score], [LastActivityDate] = x.[LastActivityDate] " in sql
    assert sql.endswith(
        "WHEN NOT MATCHED BY TARGET THEN INSERT ([Id], [Title], [Score], [LastActivityDate]) "
        "VALUES (x.[Id], x.[Title], x.[Score], x.[LastActivityDate]) OUTPUT $action INTO @merged;"
    )
    assert "Shout" not in sql  # a generated column is computed by the server
    keys_only = merge_sql(KEYS_ONLY, "dbo", "PostTags", "PostTags__merge")
    assert "WHEN MATCHED" not in keys_only and isinstance(sqlglot.parse_one(keys_only, read="tsql"), exp.Merge)
    batch = merge_batch_sql(POSTS, "dbo", "Posts", "Posts__merge")
    statements = [s for s in sqlglot.parse(batch, read="tsql") if s is not None]
    assert [type(s).__name__ for s in statements][-2:] == ["Merge", "Select"]


def test_babelfish_gets_an_update_of_the_rows_that_differ_then_an_insert_of_the_new_keys():
    sqlglot = _sqlglot()
    update = update_sql(POSTS, "dbo", "Posts", "Posts__merge")
    assert update is not None
    assert update.startswith(
        "UPDATE d SET [Title] = x.[Title], [Score] = x.[Score], [LastActivityDate] = x.[LastActivityDate] "
        "FROM [dbo].[Posts] AS d INNER JOIN [dbo].[Posts__merge] AS x ON d.[Id] = x.[Id] WHERE (d.[Title] <> x.[Title]"
    )
    assert update.endswith("; SELECT @@ROWCOUNT") and "OUTPUT" not in update and "MERGE" not in update
    assert insert_sql(POSTS, "dbo", "Posts", "Posts__merge") == (
        "INSERT INTO [dbo].[Posts] ([Id], [Title], [Score], [LastActivityDate]) "
        "SELECT x.[Id], x.[Title], x.[Score], x.[LastActivityDate] FROM [dbo].[Posts__merge] AS x "
        "WHERE NOT EXISTS (SELECT 1 FROM [dbo].[Posts] AS d WHERE d.[Id] = x.[Id]); SELECT @@ROWCOUNT"
    )
    for sql in (update, insert_sql(KEYS_ONLY, "dbo", "PostTags", "s")):
        assert len([s for s in sqlglot.parse(sql, read="tsql") if s is not None]) == 2
    assert update_sql(KEYS_ONLY, "dbo", "PostTags", "s") is None
    assert "d.[PostId] = x.[PostId] AND d.[TagId] = x.[TagId]" in insert_sql(KEYS_ONLY, "dbo", "PostTags", "s")


def test_differs_is_null_safe_and_false_for_no_columns():
    assert differs_sql(["a"]) == "(d.[a] <> x.[a] OR (d.[a] IS NULL AND x.[a] IS NOT NULL) OR (d.[a] IS NOT NULL AND x.[a] IS NULL))"
    assert differs_sql([]) == "1 = 0"


def test_merge_needs_a_primary_key():
    nokey = TableSpec("Log", (ColumnSpec("At", "timestamp without time zone"),))
    for make in (upsert_sql, merge_sql, insert_sql, update_sql):
        with pytest.raises(ValueError, match="no primary key"):
            make(nokey, "s", "Log", "Log__merge")
    with pytest.raises(ConfigurationError, match="needs a primary key"):
        check_cursor(nokey, "At")


def test_check_cursor_names_the_table_and_the_param():
    with pytest.raises(ConfigurationError, match="cursor_columns") as info:
        check_cursor(POSTS, None, table="Posts")
    assert info.value.table == "Posts"
    with pytest.raises(ConfigurationError, match="not a column") as info:
        check_cursor(POSTS, "Nope", table="Posts")
    assert info.value.column == "Nope"
    with pytest.raises(ConfigurationError, match="integer or a timestamp"):
        check_cursor(POSTS, "Title")
    assert check_cursor(POSTS, "LastActivityDate") == "LastActivityDate"
    assert check_cursor(POSTS, "Score") == "Score"


def test_stage_spec_is_a_plain_keyless_copy():
    stage = stage_spec(POSTS)
    assert stage.name == "Posts__merge" and stage.column_names == POSTS.column_names
    assert (stage.identity, stage.indexes, stage.foreign_keys) == (None, (), ())
    assert not any(c.identity or c.generated for c in stage.columns)


def test_window_start_subtracts_the_lag_from_a_timestamp_only():
    assert window_start(dt.datetime(2024, 3, 1, 0, 5), 300) == dt.datetime(2024, 3, 1)
    assert window_start(41, 300) == 41


def test_merge_params():
    params = {"mode": "full", "table_modes": {"Posts": "merge"}, "cursor_columns": {"Posts": "LastActivityDate"}}
    assert table_mode(params, "dbo.Posts") == "merge"
    assert cursor_column(params, "dbo.Posts") == "LastActivityDate"
    assert cursor_column(params, "Votes") is None
    assert merge_lag_seconds(params) == 300.0
    assert merge_lag_seconds({"merge_lag_seconds": 0}) == 0.0
    for bad in (-1, "soon"):
        with pytest.raises(ConfigurationError, match="merge_lag_seconds"):
            merge_lag_seconds({"merge_lag_seconds": bad})
    with pytest.raises(ConfigurationError, match="cursor_columns"):
        cursor_column({"cursor_columns": ["Posts"]}, "Posts")
    with pytest.raises(ConfigurationError, match="mode must be one of"):
        table_mode({"mode": "upsert"}, "Posts")
