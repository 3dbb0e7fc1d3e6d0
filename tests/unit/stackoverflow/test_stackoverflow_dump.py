"""Unit tests of the dump parser: XML written to tmp_path -> RecordBatches, no database."""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pytest

from include.replication.core.errors import ConfigurationError, DataError
from include.replication.core.typemap import arrow_schema
from include.stackoverflow.dump import (
    TableImport,
    lookup_batches,
    plan_import,
    read_dump_batches,
)
from include.stackoverflow.schema import LOOKUP_ROWS, table


def _write(tmp_path: Path, name: str, root: str, rows: list[str]) -> Path:
    path = tmp_path / name
    body = "\n".join(f"  <row {r} />" for r in rows)
    path.write_text(f'\ufeff<?xml version="1.0" encoding="utf-8"?>\n<{root}>\n{body}\n</{root}>\n', encoding="utf-8")
    return path


def _read(path: Path, name: str, batch_rows: int = 1000) -> tuple[pa.Table, TableImport]:
    spec = table(name)
    stats = TableImport(name, path.name)
    batches = list(read_dump_batches(path, spec, batch_rows=batch_rows, stats=stats))
    for b in batches:
        assert b.schema.equals(arrow_schema(spec))
        assert b.num_rows <= batch_rows
    return pa.Table.from_batches(batches, schema=arrow_schema(spec)), stats


USERS = [
    'Id="-1" Reputation="1" CreationDate="2018-02-05T21:30:46.360" DisplayName="Community" '
    'LastAccessDate="2018-02-05T21:30:46.360" Location="on the server farm" '
    'AboutMe="&lt;p&gt;Hi&lt;/p&gt;&#xD;&#xA;&lt;p&gt;I am not a person&lt;/p&gt;" Views="4" UpVotes="0" '
    'DownVotes="0" AccountId="-1" ProfileImageUrl="https://x/y.png"',
    'Id="7" Reputation="101" CreationDate="2018-02-06T19:55:45.000" DisplayName="Ann &amp; Bo" '
    'LastAccessDate="2020-06-05T22:30:55.373" Views="0" UpVotes="3" DownVotes="1" AccountId="42"',
]


def test_users_community_user_entities_absent_and_extra_attributes(tmp_path: Path) -> None:
    t, stats = _read(_write(tmp_path, "Users.xml", "users", USERS), "Users")
    rows = t.to_pylist()
    assert [r["Id"] for r in rows] == [-1, 7]
    community = rows[0]
    assert community["DisplayName"] == "Community"
    assert community["AccountId"] == -1
    # entity-escaped CR LF arrive as real characters, markup entities decoded
    assert community["AboutMe"] == "<p>Hi</p>\r\n<p>I am not a person</p>"
    assert rows[1]["DisplayName"] == "Ann & Bo"
    # absent nullable columns are NULL (Age, EmailHash never in recent dumps)
    assert rows[1]["Location"] is None and rows[1]["AboutMe"] is None and rows[1]["WebsiteUrl"] is None
    assert all(r["Age"] is None and r["EmailHash"] is None for r in rows)
    # extra attribute dropped and counted
    assert stats.dropped_attributes == {"ProfileImageUrl": 1}
    assert stats.defaulted == {}
    assert stats.rows == 2 and stats.batches == 1


def test_dates_keep_milliseconds(tmp_path: Path) -> None:
    t, _ = _read(_write(tmp_path, "Users.xml", "users", USERS), "Users")
    assert t.column("CreationDate").type == pa.timestamp("us")
    assert t.column("CreationDate").to_pylist() == [
        datetime(2018, 2, 5, 21, 30, 46, 360000),
        datetime(2018, 2, 6, 19, 55, 45, 0),
    ]
    assert t.column("LastAccessDate")[1].as_py() == datetime(2020, 6, 5, 22, 30, 55, 373000)


POSTS = [
    'Id="1" PostTypeId="1" AcceptedAnswerId="2" CreationDate="2018-02-06T20:19:50.957" Score="10" ViewCount="172" '
    'Body="&lt;p&gt;Q&lt;/p&gt;&#xA;" OwnerUserId="14" LastActivityDate="2018-02-06T21:19:52.777" '
    'Title="Are questions asked in conlangs accepted?" Tags="&lt;discussion&gt;&lt;on-topic&gt;" AnswerCount="3" '
    'CommentCount="2" ContentLicense="CC BY-SA 3.0"',
    'Id="2" PostTypeId="2" ParentId="1" CreationDate="2018-02-06T20:25:42.850" Score="-2" Body="&lt;p&gt;A&lt;/p&gt;" '
    'OwnerDisplayName="user23" LastActivityDate="2018-02-06T20:25:42.850" CommentCount="0" ContentLicense="CC BY-SA 3.0"',
    'Id="5" PostTypeId="2" ParentId="1" CreationDate="2018-02-07T00:00:00.003" Score="0" Body="b" '
    'LastActivityDate="2018-02-07T00:00:00.003" CommentCount="0" ContentLicense="CC BY-SA 4.0"',
]


def test_posts_absent_not_null_integer_defaults_to_zero_and_is_counted(tmp_path: Path) -> None:
    t, stats = _read(_write(tmp_path, "Posts.xml", "posts", POSTS), "Posts", batch_rows=2)
    rows = t.to_pylist()
    assert [r["ViewCount"] for r in rows] == [172, 0, 0]
    assert stats.defaulted == {"ViewCount": 2}
    assert stats.dropped_attributes == {"ContentLicense": 3, "OwnerDisplayName": 1}
    assert stats.batches == 2 and stats.rows == 3
    assert rows[0]["Tags"] == "<discussion><on-topic>"
    assert rows[0]["Body"] == "<p>Q</p>\n"
    assert rows[1]["Score"] == -2 and rows[1]["OwnerUserId"] is None and rows[1]["Title"] is None
    assert rows[2]["CreationDate"] == datetime(2018, 2, 7, 0, 0, 0, 3000)


def test_batch_edges_exact_budget_and_budget_plus_one(tmp_path: Path) -> None:
    path = _write(tmp_path, "Posts.xml", "posts", POSTS)
    assert [b.num_rows for b in read_dump_batches(path, table("Posts"), batch_rows=3)] == [3]
    assert [b.num_rows for b in read_dump_batches(path, table("Posts"), batch_rows=1)] == [1, 1, 1]
    empty = _write(tmp_path, "Votes.xml", "votes", [])
    assert list(read_dump_batches(empty, table("Votes"), batch_rows=10)) == []
    with pytest.raises(ConfigurationError):
        list(read_dump_batches(path, table("Posts"), batch_rows=0))


def test_post_history_guid(tmp_path: Path) -> None:
    g = "990d3fa1-a80c-4b14-9414-14b2ec0fd7ad"
    path = _write(
        tmp_path,
        "PostHistory.xml",
        "posthistory",
        [f'Id="1" PostHistoryTypeId="2" PostId="1" RevisionGUID="{g}" CreationDate="2018-02-06T20:19:50.957" UserId="14" Text="x&#xD;&#xA;y" ContentLicense="CC BY-SA 3.0"'],
    )
    t, stats = _read(path, "PostHistory")
    assert t.column("RevisionGUID").type == pa.uuid()
    assert t.column("RevisionGUID")[0].as_py() == uuid.UUID(g)
    assert t.column("Text")[0].as_py() == "x\r\ny"
    assert t.column("Comment")[0].as_py() is None
    assert stats.dropped_attributes == {"ContentLicense": 1}


@pytest.mark.parametrize(
    ("row", "column"),
    [
        # Comments.Text is nvarchar(700): 701 characters do not fit
        ('Id="9" PostId="1" Score="0" Text="' + "a" * 701 + '" CreationDate="2018-02-06T20:30:28.907"', "Text"),
        ('Id="9" PostId="x1" Text="t" CreationDate="2018-02-06T20:30:28.907"', "PostId"),
        ('Id="9" PostId="1" Text="t" CreationDate="2018-02-31T20:30:28.907"', "CreationDate"),
        ('Id="9" PostId="1" Text="t" CreationDate="1700-01-01T00:00:00.000"', "CreationDate"),
        ('Id="9" PostId="3000000000" Text="t" CreationDate="2018-02-06T20:30:28.907"', "PostId"),
        # Text is NOT NULL and not an integer: no default
        ('Id="9" PostId="1" CreationDate="2018-02-06T20:30:28.907"', "Text"),
    ],
)
def test_values_that_cannot_be_held_raise_data_error_naming_table_column_id(tmp_path: Path, row: str, column: str) -> None:
    ok = 'Id="8" PostId="1" Text="fine" CreationDate="2018-02-06T20:30:28.907"'
    path = _write(tmp_path, "Comments.xml", "comments", [ok, row])
    with pytest.raises(DataError) as info:
        list(read_dump_batches(path, table("Comments"), batch_rows=10))
    assert info.value.table == "dbo.Comments"
    assert info.value.column == column
    assert info.value.key == 9  # the row's Id, as an integer like every row key of the product
    assert info.value.retryable is False


def test_700_characters_fit_and_supplementary_characters_count_twice(tmp_path: Path) -> None:
    ok = 'Id="1" PostId="1" Text="' + "é" * 700 + '" CreationDate="2018-02-06T20:30:28.907"'
    t, _ = _read(_write(tmp_path, "Comments.xml", "comments", [ok]), "Comments")
    assert len(t.column("Text")[0].as_py()) == 700
    # 350 emoji = 700 UTF-16 code units: fits; 351 = 702: does not
    fits = 'Id="2" PostId="1" Text="' + "\U0001F600" * 350 + '" CreationDate="2018-02-06T20:30:28.907"'
    _read(_write(tmp_path, "Comments.xml", "comments", [fits]), "Comments")
    too_long = 'Id="3" PostId="1" Text="' + "\U0001F600" * 351 + '" CreationDate="2018-02-06T20:30:28.907"'
    with pytest.raises(DataError) as info:
        list(read_dump_batches(_write(tmp_path, "Comments.xml", "comments", [too_long]), table("Comments")))
    assert (info.value.column, info.value.key) == ("Text", 3)


def test_malformed_xml_raises_data_error_with_last_good_id(tmp_path: Path) -> None:
    path = tmp_path / "Votes.xml"
    path.write_text('<votes>\n<row Id="1" PostId="1" VoteTypeId="2" CreationDate="2018-02-06T00:00:00.000" />\n<row Id="2" PostId=>\n</votes>')
    with pytest.raises(DataError) as info:
        list(read_dump_batches(path, table("Votes")))
    assert info.value.table == "dbo.Votes" and info.value.key == 1


def test_missing_primary_key_is_an_error_not_a_default(tmp_path: Path) -> None:
    path = _write(tmp_path, "Votes.xml", "votes", ['PostId="1" VoteTypeId="2" CreationDate="2018-02-06T00:00:00.000"'])
    with pytest.raises(DataError) as info:
        list(read_dump_batches(path, table("Votes")))
    assert info.value.column == "Id"


def test_lookup_batches_hold_the_published_rows() -> None:
    (b,) = list(lookup_batches(table("VoteTypes")))
    assert b.schema.equals(arrow_schema(table("VoteTypes")))
    assert b.num_rows == 15 and 14 not in b.column("Id").to_pylist()
    (p,) = list(lookup_batches(table("PostHistoryTypes")))
    assert p.num_rows == 37 and p.column("Id").to_pylist() == [*range(1, 32), *range(33, 39)]
    assert LOOKUP_ROWS["PostTypes"][3] == (4, "TagWikiExerpt")


def test_plan_import_follows_the_files_present(tmp_path: Path) -> None:
    for name in ("Users", "Posts", "Comments", "Badges", "Votes", "PostLinks"):
        (tmp_path / f"{name}.xml").write_text("<x/>")
    names = [s.name for s, _ in plan_import(tmp_path)]
    assert "PostHistory" not in names and "Tags" not in names and "PostHistoryTypes" not in names
    assert {"LinkTypes", "PostTypes", "VoteTypes", "Posts"} <= set(names)
    (tmp_path / "Tags.xml").write_text("<tags/>")
    (tmp_path / "PostHistory.xml").write_text("<posthistory/>")
    names = [s.name for s, _ in plan_import(tmp_path)]
    assert {"PostHistory", "PostHistoryTypes", "Tags"} <= set(names)
    with pytest.raises(ConfigurationError):
        plan_import(tmp_path, ["Nope"])
    (tmp_path / "Votes.xml").unlink()
    with pytest.raises(ConfigurationError) as info:
        plan_import(tmp_path)
    assert info.value.table == "Votes"


def test_dump_source_is_a_source_of_the_folder(tmp_path: Path) -> None:
    from include.replication.core.typemap import arrow_schema
    from include.stackoverflow.dump import DumpSource

    for name in ("Users", "Posts", "Comments", "Badges", "Votes", "PostLinks"):
        (tmp_path / f"{name}.xml").write_text(f"<{name.lower()}/>")
    _write(tmp_path, "Comments.xml", "comments", [
        f'Id="{i}" PostId="1" Text="{"t" * 300}" CreationDate="2018-02-06T20:30:28.907" Extra="x"' for i in range(1, 41)
    ])
    with DumpSource(tmp_path) as source:
        assert source.list_tables() == ["Users", "Posts", "Comments", "Badges", "Votes", "PostLinks",
                                        "LinkTypes", "PostTypes", "VoteTypes"]
        spec = source.describe("Comments")
        assert source.count_rows(spec) == 40 and source.key_bounds(spec) is None
        batches = list(source.read_batches(spec, batch_rows=16, batch_bytes=64 * 1024))
        assert [b.num_rows for b in batches] == [16, 16, 8]
        assert all(b.schema.equals(arrow_schema(spec)) for b in batches)
        assert source.imports["Comments"].dropped_attributes == {"Extra": 40}
        small = list(source.read_batches(spec, batch_rows=100, batch_bytes=4096))  # ~300 bytes of text per row
        assert sum(b.num_rows for b in small) == 40 and max(b.nbytes for b in small) <= 4096
        lookup = source.describe("VoteTypes")
        assert source.count_rows(lookup) == 15
        assert sum(b.num_rows for b in source.read_batches(lookup, batch_rows=100, batch_bytes=1 << 20)) == 15
        with pytest.raises(ConfigurationError, match="not in dump folder"):
            source.describe("PostHistory")
        with pytest.raises(ConfigurationError, match="key range"):
            list(source.read_batches(spec, batch_rows=10, batch_bytes=1 << 20, key_range=(1, 5)))
