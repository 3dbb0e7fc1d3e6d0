"""The published StackOverflow2010 schema as catalog :class:`TableSpec`\\ s (SQL Server dialect).

Source: public scriptings of the database, its readme and the soddi importer (as gathered in the
project's notes on StackOverflow2010). Every table has ``Id int NOT NULL IDENTITY(1,1)`` with a clustered primary key on ``Id``,
no foreign keys and no secondary indexes; columns are listed in the database's own ordinal order.

Primary-key names: the source's irregular names are used where they are known (``PK_Users_Id``,
``PK_VoteType__Id``, ``PK_Posts__Id``); every other table uses ``PK_<Table>__Id``, which is a
convention of this module, not a verified fact about the published database.

Tables of the larger editions (2013 and later): ``PostHistory``, ``PostHistoryTypes`` and ``Tags``.
Their nullability is not in the published notes; this module declares NOT NULL what every row of the
real dumps carries (``PostHistory.PostHistoryTypeId/PostId/RevisionGUID/CreationDate``,
``Tags.TagName/Count``) and nullable the rest.

Lookup rows (``LOOKUP_ROWS``): LinkTypes, PostTypes and VoteTypes as published with the database;
PostHistoryTypes 1-31 and 33-38 with the names of the Stack Exchange data-dump documentation
("Database schema documentation for the public data dump and SEDE", meta.stackexchange.com
question 2677). That documentation marks 23 and 26-30 as guesses ("older dumps ... no longer
present"); the dumps also use 50, 52, 53 and 66, which are outside the published 1-38 range and are
therefore not lookup rows here.
"""

from __future__ import annotations

from include.replication.core.catalog import MAX_LENGTH, ColumnSpec, IdentitySpec, TableSpec

__all__ = [
    "SCHEMA",
    "CORE_TABLES",
    "LARGER_TABLES",
    "LOOKUP_TABLES",
    "PUBLISHED_ROW_COUNTS",
    "PUBLISHED_TOTAL_ROWS",
    "LOOKUP_ROWS",
    "TABLES",
    "table",
    "tables",
]

SCHEMA = "dbo"
"""Schema of every table in the source database."""


def _id() -> ColumnSpec:
    return ColumnSpec("Id", "int", nullable=False, identity=True)


def _int(name: str, nullable: bool = True) -> ColumnSpec:
    return ColumnSpec(name, "int", nullable=nullable)


def _dt(name: str, nullable: bool = True) -> ColumnSpec:
    return ColumnSpec(name, "datetime", precision=3, nullable=nullable)


def _nv(name: str, length: int, nullable: bool = True) -> ColumnSpec:
    return ColumnSpec(name, "nvarchar", length=length, nullable=nullable)


def _v(name: str, length: int, nullable: bool = True) -> ColumnSpec:
    return ColumnSpec(name, "varchar", length=length, nullable=nullable)


def _table(name: str, pk_name: str | None, *columns: ColumnSpec, rows: int = 0) -> TableSpec:
    return TableSpec(
        name=name,
        columns=(_id(), *columns),
        schema=SCHEMA,
        primary_key=("Id",),
        primary_key_name=pk_name or f"PK_{name}__Id",
        identity=IdentitySpec("Id", seed=1, increment=1),
        row_estimate=rows,
        dialect="mssql",
    )


PUBLISHED_ROW_COUNTS: dict[str, int] = {
    "Badges": 1_102_019,
    "Comments": 3_875_183,
    "LinkTypes": 2,
    "PostLinks": 161_519,
    "Posts": 3_729_195,
    "PostTypes": 8,
    "Users": 299_398,
    "Votes": 10_143_364,
    "VoteTypes": 15,
}
"""Published row counts of StackOverflow2010 (rows); several independent reports agree on them."""

PUBLISHED_TOTAL_ROWS = 19_310_703
"""Sum of :data:`PUBLISHED_ROW_COUNTS` (rows), as published."""

_F = False  # NOT NULL marker, to keep the column lists readable

TABLES: dict[str, TableSpec] = {
    t.name: t
    for t in (
        _table("Badges", None, _nv("Name", 40, _F), _int("UserId", _F), _dt("Date", _F), rows=1_102_019),
        _table(
            "Comments",
            None,
            _dt("CreationDate", _F),
            _int("PostId", _F),
            _int("Score"),
            _nv("Text", 700, _F),
            _int("UserId"),
            rows=3_875_183,
        ),
        _table("LinkTypes", None, _v("Type", 50, _F), rows=2),
        _table(
            "PostLinks",
            None,
            _dt("CreationDate", _F),
            _int("PostId", _F),
            _int("RelatedPostId", _F),
            _int("LinkTypeId", _F),
            rows=161_519,
        ),
        _table(
            "Posts",
            "PK_Posts__Id",
            _int("AcceptedAnswerId"),
            _int("AnswerCount"),
            _nv("Body", MAX_LENGTH, _F),
            _dt("ClosedDate"),
            _int("CommentCount"),
            _dt("CommunityOwnedDate"),
            _dt("CreationDate", _F),
            _int("FavoriteCount"),
            _dt("LastActivityDate", _F),
            _dt("LastEditDate"),
            _nv("LastEditorDisplayName", 40),
            _int("LastEditorUserId"),
            _int("OwnerUserId"),
            _int("ParentId"),
            _int("PostTypeId", _F),
            _int("Score", _F),
            _nv("Tags", 150),
            _nv("Title", 250),
            _int("ViewCount", _F),
            rows=3_729_195,
        ),
        _table("PostTypes", None, _nv("Type", 50, _F), rows=8),
        _table(
            "Users",
            "PK_Users_Id",
            _nv("AboutMe", MAX_LENGTH),
            _int("Age"),
            _dt("CreationDate", _F),
            _nv("DisplayName", 40, _F),
            _int("DownVotes", _F),
            _nv("EmailHash", 40),
            _dt("LastAccessDate", _F),
            _nv("Location", 100),
            _int("Reputation", _F),
            _int("UpVotes", _F),
            _int("Views", _F),
            _nv("WebsiteUrl", 200),
            _int("AccountId"),
            rows=299_398,
        ),
        _table(
            "Votes",
            None,
            _int("PostId", _F),
            _int("UserId"),
            _int("BountyAmount"),
            _int("VoteTypeId", _F),
            _dt("CreationDate", _F),
            rows=10_143_364,
        ),
        _table("VoteTypes", "PK_VoteType__Id", _v("Name", 50, _F), rows=15),
        # ---- larger editions (2013 and later) ----
        _table(
            "PostHistory",
            None,
            _int("PostHistoryTypeId", _F),
            _int("PostId", _F),
            ColumnSpec("RevisionGUID", "uniqueidentifier", nullable=False),
            _dt("CreationDate", _F),
            _int("UserId"),
            _nv("UserDisplayName", 40),
            _nv("Comment", MAX_LENGTH),
            _nv("Text", MAX_LENGTH),
        ),
        _table("PostHistoryTypes", None, _nv("Type", 50, _F), rows=37),
        _table(
            "Tags",
            None,
            _nv("TagName", 150, _F),
            _int("Count", _F),
            _int("ExcerptPostId"),
            _int("WikiPostId"),
        ),
    )
}
"""Every table of the schema by name (the nine StackOverflow2010 tables and the three larger ones)."""

CORE_TABLES: tuple[str, ...] = (
    "Badges",
    "Comments",
    "LinkTypes",
    "PostLinks",
    "Posts",
    "PostTypes",
    "Users",
    "Votes",
    "VoteTypes",
)
"""The nine StackOverflow2010 tables, in the database's (alphabetical) order."""

LARGER_TABLES: tuple[str, ...] = ("PostHistory", "PostHistoryTypes", "Tags")
"""Tables present only in the larger editions (2013 and later)."""

LOOKUP_TABLES: tuple[str, ...] = ("LinkTypes", "PostTypes", "VoteTypes", "PostHistoryTypes")
"""Tables with a fixed content (:data:`LOOKUP_ROWS`) and no dump file."""

LOOKUP_ROWS: dict[str, tuple[tuple[int, str], ...]] = {
    "LinkTypes": ((1, "Linked"), (3, "Duplicate")),
    "PostTypes": (
        (1, "Question"),
        (2, "Answer"),
        (3, "Wiki"),
        (4, "TagWikiExerpt"),  # sic, as published
        (5, "TagWiki"),
        (6, "ModeratorNomination"),
        (7, "WikiPlaceholder"),
        (8, "PrivilegeWiki"),
    ),
    "VoteTypes": (
        (1, "AcceptedByOriginator"),
        (2, "UpMod"),
        (3, "DownMod"),
        (4, "Offensive"),
        (5, "Favorite"),
        (6, "Close"),
        (7, "Reopen"),
        (8, "BountyStart"),
        (9, "BountyClose"),
        (10, "Deletion"),
        (11, "Undeletion"),
        (12, "Spam"),
        (13, "InformModerator"),
        (15, "ModeratorReview"),
        (16, "ApproveEditSuggestion"),
    ),
    "PostHistoryTypes": (
        (1, "Initial Title"),
        (2, "Initial Body"),
        (3, "Initial Tags"),
        (4, "Edit Title"),
        (5, "Edit Body"),
        (6, "Edit Tags"),
        (7, "Rollback Title"),
        (8, "Rollback Body"),
        (9, "Rollback Tags"),
        (10, "Post Closed"),
        (11, "Post Reopened"),
        (12, "Post Deleted"),
        (13, "Post Undeleted"),
        (14, "Post Locked"),
        (15, "Post Unlocked"),
        (16, "Community Owned"),
        (17, "Post Migrated"),
        (18, "Question Merged"),
        (19, "Question Protected"),
        (20, "Question Unprotected"),
        (21, "Post Disassociated"),
        (22, "Question Unmerged"),
        (23, "Unknown dev related event"),
        (24, "Suggested Edit Applied"),
        (25, "Post Tweeted"),
        (26, "Vote nullification by dev"),
        (27, "Post unmigrated/hidden moderator migration"),
        (28, "Unknown suggestion event"),
        (29, "Unknown moderator event"),
        (30, "Unknown event"),
        (31, "Comment discussion moved to chat"),
        (33, "Post notice added"),
        (34, "Post notice removed"),
        (35, "Post migrated away"),
        (36, "Post migrated here"),
        (37, "Post merge source"),
        (38, "Post merge destination"),
    ),
}
"""Fixed rows of the lookup tables: table -> ((Id, name), ...) in Id order."""


def table(name: str) -> TableSpec:
    """Return the :class:`TableSpec` of one table by its exact name (``Posts``).

    Raises:
        KeyError: no such table in the schema.
    """
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"StackOverflow schema has no table {name!r}; known: {', '.join(TABLES)}") from None


def tables(include_larger: bool = False) -> list[TableSpec]:
    """Return the schema's tables.

    Args:
        include_larger: also return ``PostHistory``, ``PostHistoryTypes`` and ``Tags``.

    Returns:
        The nine StackOverflow2010 tables in the database's order, then (when asked) the three larger
        tables: 9 or 12 :class:`TableSpec` with ``dialect="mssql"`` and ``schema="dbo"``.
    """
    names = CORE_TABLES + (LARGER_TABLES if include_larger else ())
    return [TABLES[n] for n in names]
