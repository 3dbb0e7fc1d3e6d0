"""Naming options on in-memory catalogs: patterns and exclude resolved against a table list,
validation of target_case and the template, and the target names of a table (case, template,
keys, indexes, foreign keys, expressions)."""

from __future__ import annotations

import pytest

from include.replication.core.catalog import ColumnSpec, ForeignKeySpec, IdentitySpec, IndexSpec, TableSpec
from include.replication.core.config import DEFAULT_TABLE_TEMPLATE, DEFAULT_TARGET_CASE
from include.replication.core.errors import ConfigurationError
from include.replication.core.naming import NamingOptions, PatternError, TableRef, is_pattern, resolve_tables
from include.replication.dialects.postgres.dialect import POSTGRES

CATALOG = {
    None: ["Badges", "PostHistory", "PostLinks", "PostTypes", "Posts", "Users", "Votes"],
    "dbo": ["Badges", "Posts"],
    "archive": ["BigVotes", "OldPosts"],
}


def listing(schema: str | None) -> list[str]:
    return CATALOG.get(schema, [])


def test_no_tables_means_every_table_of_the_default_schema_minus_exclude():
    assert resolve_tables([], [], listing) == CATALOG[None]
    assert resolve_tables([], ["Post*", "votes"], listing) == ["Badges", "Users"]


def test_patterns_resolve_in_order_case_insensitively_and_deduplicate():
    assert resolve_tables(["Users", "post*", "Posts"], [], listing) == [
        "Users",
        "PostHistory",
        "PostLinks",
        "PostTypes",
        "Posts",
    ]
    assert resolve_tables(["archive.*", "dbo.Post?"], [], listing) == [
        "archive.BigVotes",
        "archive.OldPosts",
        "dbo.Posts",
    ]


def test_exclude_matches_the_entry_or_its_table_name():
    assert resolve_tables(["archive.*"], ["archive.Big*"], listing) == ["archive.OldPosts"]
    assert resolve_tables(["archive.*", "Posts"], ["*Posts"], listing) == ["archive.BigVotes"]
    assert resolve_tables(["dbo.*"], ["public.Badges"], listing) == ["dbo.Badges", "dbo.Posts"]


def test_exact_entries_are_kept_for_the_catalog_to_judge():
    assert resolve_tables(["NoSuchTable", "archive.Gone"], [], listing) == ["NoSuchTable", "archive.Gone"]


def test_a_pattern_matching_nothing_names_the_pattern_and_schema():
    with pytest.raises(PatternError) as info:
        resolve_tables(["Users", "Comment*"], [], listing)
    assert (info.value.pattern, info.value.schema, info.value.retryable) == ("Comment*", None, False)
    assert "'Comment*' matches no table in the source's default schema" in str(info.value)
    assert "Badges, PostHistory" in str(info.value)
    with pytest.raises(PatternError) as info:
        resolve_tables(["archive.X*"], [], listing)
    assert (info.value.pattern, info.value.schema) == ("archive.X*", "archive")
    assert isinstance(info.value, ConfigurationError)


def test_schema_patterns_and_an_exclude_that_leaves_nothing_are_errors():
    with pytest.raises(PatternError) as info:
        resolve_tables(["arch*.BigVotes"], [], listing)
    assert info.value.pattern == "arch*.BigVotes"
    with pytest.raises(PatternError) as info:
        resolve_tables(["Post*"], ["P*"], listing)
    assert info.value.pattern == "P*"


def test_is_pattern_and_table_ref():
    assert is_pattern("Post*") and is_pattern("Post?") and is_pattern("[PV]osts") and not is_pattern("Posts")
    assert TableRef.parse("dbo.my.table") == TableRef("my.table", "dbo")


def test_defaults_and_params_validation():
    options = NamingOptions.from_params({})
    assert (
        (options.target_case, options.table_template)
        == (DEFAULT_TARGET_CASE, DEFAULT_TABLE_TEMPLATE)
        == ("preserve", "{table}")
    )
    options = NamingOptions.from_params(
        {
            "tables": "Posts, Users",
            "exclude": ["Votes"],
            "target_case": "lower",
            "target_table_template": "so_{table}",
            "schema_map": {"a": "b"},
        }
    )
    assert (options.tables, options.exclude, options.schema_map) == (("Posts", "Users"), ("Votes",), {"a": "b"})
    assert options.target_schema("a.X") == "b" and options.target_schema("X") is None
    for bad in (
        {"target_case": "upper"},
        {"target_table_template": "so_"},
        {"target_table_template": "{table}_{db}"},
        {"target_table_template": "{table"},
        {"tables": [1]},
        {"schema_map": ["x"]},
    ):
        with pytest.raises(ConfigurationError):
            NamingOptions.from_params(bad)


def _posts() -> TableSpec:
    return TableSpec(
        name="Posts",
        schema="dbo",
        dialect="postgresql",
        columns=(
            ColumnSpec("Id", "integer", nullable=False, identity=True),
            ColumnSpec("OwnerUserId", "integer"),
            ColumnSpec("Score", "integer"),
            ColumnSpec("Double", "integer", generated='("Score" * 2)'),
        ),
        primary_key=("Id",),
        primary_key_name="PK_Posts__Id",
        identity=IdentitySpec("Id", 1, 1),
        indexes=(
            IndexSpec("IX_Posts_Score", ("Score",), where='("Score" > 0)'),
            IndexSpec("by_owner", ("OwnerUserId",)),
        ),
        foreign_keys=(ForeignKeySpec("FK_Posts_Users", ("OwnerUserId",), "Users", ("Id",)),),
        row_estimate=42,
    )


def test_preserve_without_template_is_the_same_spec():
    spec = _posts()
    assert NamingOptions().target_spec(spec, POSTGRES.quote) is spec


def test_lower_renames_every_identifier_and_the_expressions():
    t = NamingOptions(target_case="lower").target_spec(_posts(), POSTGRES.quote)
    assert (t.name, t.schema, t.row_estimate, t.dialect) == ("posts", "dbo", 42, "postgresql")
    assert t.column_names == ("id", "owneruserid", "score", "double")
    assert t.columns[3].generated == '("score" * 2)'
    assert (t.primary_key, t.primary_key_name, t.identity) == (("id",), "pk_posts__id", IdentitySpec("id", 1, 1))
    assert [(i.name, i.columns, i.where) for i in t.indexes] == [
        ("ix_posts_score", ("score",), '("score" > 0)'),
        ("by_owner", ("owneruserid",), None),
    ]
    assert t.foreign_keys == (ForeignKeySpec("fk_posts_users", ("owneruserid",), "users", ("id",)),)
    assert [c.source_type for c in t.columns] == [c.source_type for c in _posts().columns]


def test_template_renames_the_table_its_keys_and_referenced_tables():
    t = NamingOptions(table_template="so_{schema}_{table}").target_spec(_posts(), POSTGRES.quote)
    assert t.name == "so_dbo_Posts" and t.column_names == ("Id", "OwnerUserId", "Score", "Double")
    assert t.primary_key_name == "PK_so_dbo_Posts__Id"
    assert [i.name for i in t.indexes] == ["IX_so_dbo_Posts_Score", "by_owner"]
    assert t.foreign_keys[0].name == "FK_so_dbo_Posts_Users" and t.foreign_keys[0].ref_table == "so_dbo_Users"
    assert t.columns[3].generated == '("Score" * 2)'  # preserve: expressions untouched
    unnamed = NamingOptions(table_template="so_{table}", target_case="lower").target_spec(
        TableSpec("Votes", (ColumnSpec("Id", "integer"),), primary_key=("Id",))
    )
    assert unnamed.primary_key_name == "pk_so_votes"


def test_columns_that_collide_in_lower_case_are_refused_by_name():
    spec = TableSpec("T", (ColumnSpec("Id", "integer"), ColumnSpec("ID", "integer")), schema="public")
    with pytest.raises(ConfigurationError) as info:
        NamingOptions(target_case="lower").target_spec(spec)
    assert (info.value.table, info.value.column) == ("public.T", "ID")
