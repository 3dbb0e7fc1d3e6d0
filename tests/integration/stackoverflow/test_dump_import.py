"""Integration: import each real Stack Exchange dump into a fresh embedded PostgreSQL database.

Row counts are checked against an independent count of ``<row`` elements in each XML file (a byte
scan, not the importer's parser); a few values are checked against hard-coded facts and against
the first row of each Posts.xml decoded with ``re`` + ``html.unescape``.
"""

from __future__ import annotations

import html
import re
from datetime import datetime
from pathlib import Path

import pytest

from include.replication.dialects.registry import open_target
from include.stackoverflow.dump import DUMP_FILES, import_dump
from include.stackoverflow.schema import LOOKUP_ROWS, table
from tests.conftest import dump_folders

pytestmark = pytest.mark.integration

FOLDERS = dump_folders()


def _row_elements(path: Path) -> int:
    # '<' inside attribute values is always escaped as &lt;, so b"<row " only starts an element
    return path.read_bytes().count(b"<row ")


def _first_row(path: Path) -> dict[str, str]:
    with path.open(encoding="utf-8-sig") as f:
        for line in f:
            if "<row " in line:
                return {k: html.unescape(v) for k, v in re.findall(r'(\w+)="([^"]*)"', line)}
    raise AssertionError(f"no row in {path}")


@pytest.mark.skipif(not FOLDERS, reason="no real dumps in ../shared/stackexchange")
@pytest.mark.parametrize("folder", FOLDERS, ids=[p.name for p in FOLDERS])
def test_import_real_dump_counts_and_values(folder: Path, local_pg, fresh_database) -> None:
    db = fresh_database("dump")
    endpoint = local_pg.endpoint(db)
    report = import_dump(folder, endpoint, batch_rows=1000)

    expected = {name: _row_elements(folder / file) for name, file in DUMP_FILES.items() if (folder / file).exists()}
    for name in ("LinkTypes", "PostTypes", "VoteTypes"):
        expected[name] = len(LOOKUP_ROWS[name])
    if (folder / "PostHistory.xml").exists():
        expected["PostHistoryTypes"] = 37
    assert {t.table: t.rows for t in report.tables} == expected

    with open_target(endpoint) as target:
        for name, rows in expected.items():
            assert target.execute(f'SELECT count(*) FROM "public"."{name}"')[0][0] == rows, name
        # the Community user
        assert target.execute('SELECT "DisplayName", "AccountId" FROM "public"."Users" WHERE "Id" = -1') == [("Community", -1)]
        # first post, decoded independently of the importer
        first = _first_row(folder / "Posts.xml")
        got = target.execute(
            'SELECT "Title", "Body", "CreationDate", "ViewCount", "Score" FROM "public"."Posts" WHERE "Id" = $1',
            (int(first["Id"]),),
        )
        assert got == [
            (
                first.get("Title"),
                first["Body"],
                datetime.fromisoformat(first["CreationDate"]),
                int(first.get("ViewCount", 0)),
                int(first["Score"]),
            )
        ]
        # answers have no ViewCount in the dump: defaulted to 0 and counted
        answers = target.execute('SELECT count(*) FROM "public"."Posts" WHERE "PostTypeId" <> 1 AND "ViewCount" = 0')[0][0]
        assert report.table("Posts").defaulted["ViewCount"] == answers > 0
        # primary keys built with the source's names, identity aligned past max(Id)
        pk = target.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = '\"public\".\"Posts\"'::regclass AND contype = 'p'"
        )
        assert pk == [(table("Posts").primary_key_name,)]


@pytest.mark.skipif(not any(p.name == "conlang.meta" for p in FOLDERS), reason="conlang.meta dump not present")
def test_conlang_known_values_and_rerun_is_idempotent(local_pg, fresh_database) -> None:
    folder = next(p for p in FOLDERS if p.name == "conlang.meta")
    db = fresh_database("conlang")
    endpoint = local_pg.endpoint(db)
    import_dump(folder, endpoint, tables=["Posts", "PostHistory", "Users"])
    report = import_dump(folder, endpoint, tables=["Posts", "PostHistory", "Users"])  # re-run: same rows
    assert [t.table for t in report.tables] == ["Users", "Posts", "PostHistory"]
    with open_target(endpoint) as target:
        assert target.execute('SELECT count(*) FROM "public"."Posts"')[0][0] == 177
        title, body, created = target.execute('SELECT "Title", "Body", "CreationDate" FROM "public"."Posts" WHERE "Id" = 1')[0]
        assert title == "Are questions asked in conlangs accepted on this site?"
        assert body.startswith("<p>We anticipate conlang specialists on this site")
        assert body.endswith("<strong>do we accept questions asked in (popular) conlangs?</strong></p>\n")
        assert created == datetime(2018, 2, 6, 20, 19, 50, 957000)
        guid, text = target.execute('SELECT "RevisionGUID"::text, "Text" FROM "public"."PostHistory" WHERE "Id" = 1')[0]
        assert guid == "990d3fa1-a80c-4b14-9414-14b2ec0fd7ad"
        assert "\r\n\r\nAlso, several constructed languages" in text


def test_fill_synthetic_loads_through_the_target(local_pg, fresh_database) -> None:
    from include.stackoverflow.synthetic import fill_synthetic, row_count

    db = fresh_database("synth")
    endpoint = local_pg.endpoint(db)
    names = ["Users", "Posts", "Votes", "VoteTypes", "PostHistory"]
    report = fill_synthetic(endpoint, 0.0005, seed=3, tables=names, batch_rows=2000)
    assert report.rows == {n: row_count(n, 0.0005) for n in names}
    with open_target(endpoint) as target:
        for n in names:
            assert target.execute(f'SELECT count(*) FROM "public"."{n}"')[0][0] == row_count(n, 0.0005)
        assert target.execute('SELECT "DisplayName" FROM "public"."Users" WHERE "Id" = -1') == [("Community",)]
        orphans = target.execute(
            'SELECT count(*) FROM "public"."Votes" v LEFT JOIN "public"."Posts" p ON p."Id" = v."PostId" WHERE p."Id" IS NULL'
        )
        assert orphans == [(0,)]
