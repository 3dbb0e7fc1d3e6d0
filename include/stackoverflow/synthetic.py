"""Synthetic StackOverflow data with the real schema, streamed as RecordBatches, deterministic.

``generate(table, scale, seed, batch_rows)`` yields ``pa.RecordBatch``\\ es with the exact schema
``arrow_schema(spec)`` of :mod:`include.stackoverflow.schema`. Properties:

* Deterministic: the same ``seed`` and ``scale`` give identical rows, whatever ``batch_rows`` is
  (rows are made in fixed chunks of :data:`CHUNK_ROWS`, each from its own
  ``numpy.random.default_rng([seed, table, chunk])``, then re-sliced to ``batch_rows``).
* Scale: ``scale=1.0`` gives the published StackOverflow2010 row counts (19,310,703 rows);
  :func:`row_count` = ``max(1, round(published * scale))`` per data table; lookup tables are always
  complete (:data:`LOOKUP_ROWS`). PostHistory and Tags, absent from StackOverflow2010, use
  :data:`ESTIMATED_ROW_COUNTS` (ratios to Posts measured on the real dumps: an estimate).
* Ids with gaps like deleted rows: row ``j`` of a table gets an Id in its own slot
  ``[floor(j*s), floor((j+1)*s))`` with stride ``s = 1 / (1 - gap)``; the offset inside the slot is a
  hash of ``(seed, table, j)``, so any row's Id is computable without state (:func:`row_id`) and
  foreign-key-ish columns (``PostId``, ``UserId``, ``ParentId``, ...) always point at Ids that exist.
  Users row 0 is the Community user, Id -1.
* Realistic null rates and text lengths: taken from :data:`MEASURED`, measured on the three real
  dumps by :mod:`include.stackoverflow.measure` (pooled counts; Posts per question/answer/other
  group). Text lengths are log-normal with the measured ``mu``/``sigma`` of ln(characters), clipped
  to the column's length (``nvarchar(max)``: :data:`MAX_TEXT_CHARS`). Text is ASCII words drawn from a
  seeded corpus, so characters = bytes; it is not HTML. Dates fall between 2008-07-31 and
  2010-12-31, increasing with Id, milliseconds on SQL Server ``datetime``'s 1/300 s grid;
  Votes.CreationDate has its time zeroed, as in the dumps.
* Fast: columns are built with numpy and pyarrow, not per row (text: one bytes join per chunk).

:class:`SyntheticSource` is a :class:`~include.replication.core.protocols.Source` of these tables;
``fill_synthetic(endpoint, scale, seed)`` fills a database by ``pipeline.copy_table`` from it, so
generated rows pass the same buffer, checks and copy units as the product's.

Command line: ``python -m include.stackoverflow synthetic --scale 0.001 --uri postgresql://...``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from include.replication.core.batching import rebatch
from include.replication.core.catalog import MAX_LENGTH, TableSpec
from include.replication.core.config import DEFAULT_BATCH_ROWS, CopySettings
from include.replication.core.dialect import Dialect
from include.replication.core.endpoint import Endpoint
from include.replication.core.errors import ConfigurationError, DataError
from include.replication.core.keyranges import KeyRange
from include.replication.core.pipeline import copy_table
from include.replication.core.protocols import Closing
from include.replication.core.rowfilter import RowFilter, filter_batches
from include.replication.core.typemap import arrow_schema
from include.replication.dialects.mssql.dialect import MSSQL
from include.replication.dialects.registry import open_target
from include.stackoverflow.measure import load_measured
from include.stackoverflow.schema import LOOKUP_ROWS, LOOKUP_TABLES, PUBLISHED_ROW_COUNTS, TABLES

__all__ = [
    "MEASURED",
    "CHUNK_ROWS",
    "MAX_TEXT_CHARS",
    "ESTIMATED_ROW_COUNTS",
    "GENERATED_TABLES",
    "row_count",
    "row_id",
    "generate",
    "SyntheticSource",
    "fill_synthetic",
    "SyntheticReport",
]

log = logging.getLogger(__name__)

MEASURED: dict[str, Any] = load_measured()
"""Figures measured on ../shared/stackexchange (bicycles.meta, conlang.meta, quantumcomputing) by
``python -m include.stackoverflow measure --write`` into ``measured.json`` (see
:mod:`include.stackoverflow.measure` for the method; the unit test
``test_measured_table_matches_the_dumps`` recomputes them). ``null`` = NULL share of rows (0..1);
``mu``/``sigma`` = mean/sd of ln(characters); ``max`` = longest value (characters); ``gap`` = share
of missing Ids; ``values`` = share of each value; ``posts.mix`` = share of question/answer/other."""

CHUNK_ROWS = 16_384
"""Rows generated per internal chunk (one RNG stream each); output batches are re-cut from chunks."""

MAX_TEXT_CHARS = 32_000
"""Upper clip (characters) of generated ``nvarchar(max)`` values."""

ESTIMATED_ROW_COUNTS: dict[str, int] = {
    "PostHistory": round(PUBLISHED_ROW_COUNTS["Posts"] * 4444 / 1623),
    "Tags": round(PUBLISHED_ROW_COUNTS["Posts"] * 319 / 3609),
}
"""Rows at scale 1.0 of the tables StackOverflow2010 lacks: Posts x (PostHistory rows / Posts rows) of
the two dumps with PostHistory.xml (4,444 / 1,623) and Posts x (Tags / Posts) of all three dumps
(319 / 3,609). Estimates, not published figures."""

GENERATED_TABLES: tuple[str, ...] = (
    "Users",
    "Posts",
    "Comments",
    "Badges",
    "Votes",
    "PostLinks",
    "LinkTypes",
    "PostTypes",
    "VoteTypes",
    "PostHistory",
    "PostHistoryTypes",
    "Tags",
)
"""Every table :func:`generate` can produce; the first nine are StackOverflow2010's."""

_CODE = {name: i + 1 for i, name in enumerate(sorted(TABLES))}
_START_US = (datetime(2008, 7, 31) - datetime(1970, 1, 1)).days * 86_400_000_000
_END_US = (datetime(2010, 12, 31) - datetime(1970, 1, 1)).days * 86_400_000_000
_DAY_US = 86_400_000_000
_MS_GRID_US = (np.round(np.arange(300) * 10 / 3).astype(np.int64)) * 1000  # datetime's 1/300 s steps
_INT32_MAX = 2**31 - 1


def row_count(table: str, scale: float) -> int:
    """Rows of ``table`` at ``scale`` (1.0 = published StackOverflow2010 counts).

    Lookup tables are always complete; every other table has ``max(1, round(count * scale))`` rows.

    Raises:
        ConfigurationError: unknown table, or ``scale`` <= 0.
    """
    if not scale > 0:
        raise ConfigurationError(f"scale must be > 0, got {scale!r}")
    if table in LOOKUP_TABLES:
        return len(LOOKUP_ROWS[table])
    base = PUBLISHED_ROW_COUNTS.get(table, ESTIMATED_ROW_COUNTS.get(table))
    if base is None:
        raise ConfigurationError(f"no synthetic data for table {table!r}", table=table)
    return max(1, round(base * scale))


def _splitmix64(x: np.ndarray) -> np.ndarray:
    z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _stride(table: str) -> float:
    gap = MEASURED["tables"].get(table, {}).get("gap", 0.0)
    return 1.0 / (1.0 - min(gap, 0.995))


def row_id(table: str, rows: np.ndarray, seed: int) -> np.ndarray:
    """The Id of each row index (0-based) of a synthetic table: increasing, with gaps, stateless.

    Users row 0 is the Community user (-1); rows ``j >= 1`` use slot ``j - 1``.

    Args:
        table: table name.
        rows: row indexes (int64 array, each in ``[0, row_count)``).
        seed: the generator seed.

    Returns:
        int64 array of Ids, same shape.
    """
    j = np.asarray(rows, dtype=np.int64)
    slot = j - 1 if table == "Users" else j
    s = _stride(table)
    lo = np.floor(slot * s).astype(np.int64)
    width = np.maximum(np.floor((slot + 1) * s).astype(np.int64) - lo, 1)
    key = (np.uint64(seed & 0xFFFFFFFF) << np.uint64(40)) ^ (np.uint64(_CODE[table]) << np.uint64(34)) ^ slot.astype(np.uint64)
    off = (_splitmix64(key) % width.astype(np.uint64)).astype(np.int64)
    ids = lo + off + 1
    if table == "Users":
        ids = np.where(j == 0, -1, ids)
    return ids


# ---------------------------------------------------------------------------------------------
# Column builders
# ---------------------------------------------------------------------------------------------

_corpus_cache: dict[int, bytes] = {}


def _corpus(seed: int) -> bytes:
    """About 2.5 MB of ASCII pseudo-words separated by spaces, fixed per seed."""
    if seed not in _corpus_cache:
        rng = np.random.default_rng([seed, 0xC0])
        letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", dtype=np.uint8)
        lengths = np.clip(rng.geometric(0.22, 4000), 1, 12)
        flat = letters[rng.integers(0, 26, int(lengths.sum()))].tobytes()
        ends = np.cumsum(lengths)
        words = [flat[e - n : e] for e, n in zip(ends.tolist(), lengths.tolist(), strict=True)]
        picks = rng.integers(0, len(words), 450_000)
        _corpus_cache[seed] = b" ".join(words[i] for i in picks.tolist())
    return _corpus_cache[seed]


def _mask(rng: np.random.Generator, n: int, rate: float | np.ndarray) -> np.ndarray:
    """Boolean NULL mask (True = NULL) with the given share of NULLs (scalar or per-row)."""
    return rng.random(n) < rate


def _ints(values: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    arr = np.asarray(values).astype(np.int32)
    return pa.array(arr, pa.int32(), mask=mask if mask is not None and mask.any() else None)


def _ts(us: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    return pa.array(np.asarray(us, dtype=np.int64), pa.int64(), mask=mask if mask is not None and mask.any() else None).cast(
        pa.timestamp("us")
    )


def _creation(rng: np.random.Generator, j: np.ndarray, total: int) -> np.ndarray:
    """Dates increasing with the row index over 2008-07-31..2010-12-31, ms on the 1/300 s grid."""
    frac = (j + rng.random(len(j))) / max(total, 1)
    us = _START_US + (frac * (_END_US - _START_US - _DAY_US)).astype(np.int64)
    return us - us % 1_000_000 + _MS_GRID_US[rng.integers(0, 300, len(j))]


def _later(rng: np.random.Generator, us: np.ndarray) -> np.ndarray:
    """A date between ``us`` and the end of the period, on the 1/300 s grid."""
    later = us + (rng.random(len(us)) * (_END_US - us)).astype(np.int64)
    return later - later % 1_000_000 + _MS_GRID_US[rng.integers(0, 300, len(us))]


def _text(
    rng: np.random.Generator,
    seed: int,
    n: int,
    mu: float | np.ndarray,
    sigma: float | np.ndarray,
    limit: int,
    mask: np.ndarray | None,
) -> pa.Array:
    """A string array of log-normal lengths (characters) cut from the corpus; NULL where ``mask``."""
    corpus = _corpus(seed)
    lengths = np.clip(np.rint(np.exp(rng.normal(mu, sigma, n))), 1, limit).astype(np.int64)
    if mask is not None:
        lengths[mask] = 0
    starts = rng.integers(0, len(corpus) - limit - 1, n)
    view = memoryview(corpus)
    data = b"".join([view[s : s + k] for s, k in zip(starts.tolist(), lengths.tolist(), strict=True)])
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    validity = None
    null_count = 0
    if mask is not None and mask.any():
        validity = pa.array(~mask).buffers()[1]
        null_count = int(mask.sum())
    return pa.Array.from_buffers(pa.string(), n, [validity, pa.py_buffer(offsets), pa.py_buffer(data)], null_count)


def _limit(spec: TableSpec, column: str) -> int:
    length = spec.column(column).length
    return MAX_TEXT_CHARS if length in (None, MAX_LENGTH) else int(length)


def _choice(rng: np.random.Generator, n: int, shares: dict[Any, float]) -> np.ndarray:
    keys = list(shares)
    p = np.array([shares[k] for k in keys], dtype=np.float64)
    return np.asarray(keys, dtype=object if isinstance(keys[0], str) else np.int64)[rng.choice(len(keys), n, p=p / p.sum())]


@dataclass
class _Ctx:
    seed: int
    scale: float
    users: int
    posts: int

    def fk(self, rng: np.random.Generator, table: str, n: int) -> np.ndarray:
        total = self.users if table == "Users" else self.posts
        return row_id(table, rng.integers(0, total, n), self.seed)


def _null_rate(table: str, column: str) -> float:
    return float(MEASURED["tables"][table]["columns"][column]["null"])


def _text_col(ctx: _Ctx, rng: np.random.Generator, spec: TableSpec, column: str, n: int) -> pa.Array:
    m = MEASURED["tables"][spec.name]["columns"][column]
    mask = _mask(rng, n, m["null"]) if spec.column(column).nullable else None
    return _text(rng, ctx.seed, n, m["mu"], m["sigma"], _limit(spec, column), mask)


def _users(ctx: _Ctx, rng: np.random.Generator, spec: TableSpec, j: np.ndarray, total: int) -> dict[str, pa.Array]:
    n = len(j)
    created = _creation(rng, j, total)
    cols: dict[str, pa.Array] = {
        "Id": _ints(row_id("Users", j, ctx.seed)),
        "AboutMe": _text_col(ctx, rng, spec, "AboutMe", n),
        "Age": _ints(rng.integers(16, 70, n), _mask(rng, n, _null_rate("Users", "Age"))),
        "CreationDate": _ts(created),
        "DisplayName": _text_col(ctx, rng, spec, "DisplayName", n),
        "DownVotes": _ints(np.floor(rng.exponential(3.0, n))),
        "EmailHash": _text(rng, ctx.seed, n, np.log(32), 0.0, 40, _mask(rng, n, _null_rate("Users", "EmailHash"))),
        "LastAccessDate": _ts(_later(rng, created)),
        "Location": _text_col(ctx, rng, spec, "Location", n),
        "Reputation": _ints(np.clip(1 + np.floor(rng.lognormal(2.0, 2.0, n)), 1, 1_000_000)),
        "UpVotes": _ints(np.floor(rng.exponential(20.0, n))),
        "Views": _ints(np.floor(rng.exponential(15.0, n))),
        "WebsiteUrl": _text_col(ctx, rng, spec, "WebsiteUrl", n),
        "AccountId": _ints(j * 7 + 11),
    }
    if j[0] == 0:  # the Community user
        fixed = {"DisplayName": "Community", "Location": "on the server farm", "AboutMe": "<p>Hi, I'm not really a person.</p>"}
        for name, value in fixed.items():
            cols[name] = pa.concat_arrays([pa.array([value], pa.string()), cols[name].slice(1)])
        cols["Reputation"] = pa.concat_arrays([pa.array([1], pa.int32()), cols["Reputation"].slice(1)])
        cols["AccountId"] = pa.concat_arrays([pa.array([-1], pa.int32()), cols["AccountId"].slice(1)])
    return cols


_POST_GROUP_TYPES = {"question": 1, "answer": 2}


def _posts(ctx: _Ctx, rng: np.random.Generator, spec: TableSpec, j: np.ndarray, total: int) -> dict[str, pa.Array]:
    n = len(j)
    mix = MEASURED["posts"]["mix"]
    groups = list(mix)
    g = rng.choice(len(groups), n, p=np.array([mix[k] for k in groups]) / sum(mix.values()))
    per = MEASURED["posts"]["groups"]

    def rate(column: str, key: str = "null") -> np.ndarray:
        return np.array([per[k][column].get(key, 0.0) for k in groups])[g]

    def nmask(column: str) -> np.ndarray:
        return _mask(rng, n, rate(column))

    ptype = np.where(g == groups.index("question"), 1, np.where(g == groups.index("answer"), 2, rng.integers(4, 6, n)))
    created = _creation(rng, j, total)
    question = ptype == 1

    def text(column: str) -> pa.Array:
        mask = nmask(column) if spec.column(column).nullable else None
        return _text(rng, ctx.seed, n, rate(column, "mu"), rate(column, "sigma"), _limit(spec, column), mask)

    return {
        "Id": _ints(row_id("Posts", j, ctx.seed)),
        "AcceptedAnswerId": _ints(ctx.fk(rng, "Posts", n), nmask("AcceptedAnswerId")),
        "AnswerCount": _ints(rng.poisson(1.5, n), nmask("AnswerCount")),
        "Body": text("Body"),
        "ClosedDate": _ts(_later(rng, created), nmask("ClosedDate")),
        "CommentCount": _ints(rng.poisson(1.5, n), nmask("CommentCount")),
        "CommunityOwnedDate": _ts(_later(rng, created), nmask("CommunityOwnedDate")),
        "CreationDate": _ts(created),
        "FavoriteCount": _ints(rng.poisson(1.0, n), nmask("FavoriteCount")),
        "LastActivityDate": _ts(_later(rng, created)),
        "LastEditDate": _ts(_later(rng, created), nmask("LastEditDate")),
        "LastEditorDisplayName": text("LastEditorDisplayName"),
        "LastEditorUserId": _ints(ctx.fk(rng, "Users", n), nmask("LastEditorUserId")),
        "OwnerUserId": _ints(ctx.fk(rng, "Users", n), nmask("OwnerUserId")),
        "ParentId": _ints(row_id("Posts", np.floor(rng.random(n) * j).astype(np.int64), ctx.seed), nmask("ParentId")),
        "PostTypeId": _ints(ptype),
        "Score": _ints(rng.poisson(2.0, n) - rng.poisson(0.3, n)),
        "Tags": text("Tags"),
        "Title": text("Title"),
        "ViewCount": _ints(np.where(question, np.floor(rng.lognormal(5.0, 1.3, n)), 0)),
    }


def _comments(ctx: _Ctx, rng: np.random.Generator, spec: TableSpec, j: np.ndarray, total: int) -> dict[str, pa.Array]:
    n = len(j)
    return {
        "Id": _ints(row_id("Comments", j, ctx.seed)),
        "CreationDate": _ts(_creation(rng, j, total)),
        "PostId": _ints(ctx.fk(rng, "Posts", n)),
        "Score": _ints(rng.poisson(0.5, n), _mask(rng, n, _null_rate("Comments", "Score"))),
        "Text": _text_col(ctx, rng, spec, "Text", n),
        "UserId": _ints(ctx.fk(rng, "Users", n), _mask(rng, n, _null_rate("Comments", "UserId"))),
    }


def _badges(ctx: _Ctx, rng: np.random.Generator, spec: TableSpec, j: np.ndarray, total: int) -> dict[str, pa.Array]:
    n = len(j)
    names = _choice(rng, n, MEASURED["tables"]["Badges"]["columns"]["Name"]["values"])
    return {
        "Id": _ints(row_id("Badges", j, ctx.seed)),
        "Name": pa.array(names.tolist(), pa.string()),
        "UserId": _ints(ctx.fk(rng, "Users", n)),
        "Date": _ts(_creation(rng, j, total)),
    }


def _votes(ctx: _Ctx, rng: np.random.Generator, spec: TableSpec, j: np.ndarray, total: int) -> dict[str, pa.Array]:
    n = len(j)
    created = _creation(rng, j, total)
    return {
        "Id": _ints(row_id("Votes", j, ctx.seed)),
        "PostId": _ints(ctx.fk(rng, "Posts", n)),
        "UserId": _ints(ctx.fk(rng, "Users", n), _mask(rng, n, _null_rate("Votes", "UserId"))),
        "BountyAmount": _ints(
            np.array([50, 100, 150, 200, 250, 300, 500])[rng.integers(0, 7, n)], _mask(rng, n, _null_rate("Votes", "BountyAmount"))
        ),
        "VoteTypeId": _ints(_choice(rng, n, MEASURED["tables"]["Votes"]["columns"]["VoteTypeId"]["values"])),
        "CreationDate": _ts(created - created % _DAY_US),
    }


def _postlinks(ctx: _Ctx, rng: np.random.Generator, spec: TableSpec, j: np.ndarray, total: int) -> dict[str, pa.Array]:
    n = len(j)
    return {
        "Id": _ints(row_id("PostLinks", j, ctx.seed)),
        "CreationDate": _ts(_creation(rng, j, total)),
        "PostId": _ints(ctx.fk(rng, "Posts", n)),
        "RelatedPostId": _ints(ctx.fk(rng, "Posts", n)),
        "LinkTypeId": _ints(_choice(rng, n, MEASURED["tables"]["PostLinks"]["columns"]["LinkTypeId"]["values"])),
    }


def _posthistory(ctx: _Ctx, rng: np.random.Generator, spec: TableSpec, j: np.ndarray, total: int) -> dict[str, pa.Array]:
    n = len(j)
    guids = pa.FixedSizeBinaryArray.from_buffers(pa.binary(16), n, [None, pa.py_buffer(rng.bytes(16 * n))])
    return {
        "Id": _ints(row_id("PostHistory", j, ctx.seed)),
        "PostHistoryTypeId": _ints(_choice(rng, n, MEASURED["tables"]["PostHistory"]["columns"]["PostHistoryTypeId"]["values"])),
        "PostId": _ints(ctx.fk(rng, "Posts", n)),
        "RevisionGUID": pa.ExtensionArray.from_storage(pa.uuid(), guids),
        "CreationDate": _ts(_creation(rng, j, total)),
        "UserId": _ints(ctx.fk(rng, "Users", n), _mask(rng, n, _null_rate("PostHistory", "UserId"))),
        "UserDisplayName": _text_col(ctx, rng, spec, "UserDisplayName", n),
        "Comment": _text_col(ctx, rng, spec, "Comment", n),
        "Text": _text_col(ctx, rng, spec, "Text", n),
    }


def _tags(ctx: _Ctx, rng: np.random.Generator, spec: TableSpec, j: np.ndarray, total: int) -> dict[str, pa.Array]:
    n = len(j)
    m = MEASURED["tables"]["Tags"]["columns"]["TagName"]
    stem = _text(rng, ctx.seed, n, m["mu"], m["sigma"], 100, None)
    names = pc.binary_join_element_wise(pc.replace_substring(stem, " ", "-"), pa.array(j).cast(pa.string()), "-")
    wiki = _mask(rng, n, _null_rate("Tags", "WikiPostId"))
    return {
        "Id": _ints(row_id("Tags", j, ctx.seed)),
        "TagName": names,
        "Count": _ints(np.floor(rng.exponential(40.0, n))),
        "ExcerptPostId": _ints(ctx.fk(rng, "Posts", n), wiki),
        "WikiPostId": _ints(ctx.fk(rng, "Posts", n), wiki),
    }


_BUILDERS = {
    "Users": _users,
    "Posts": _posts,
    "Comments": _comments,
    "Badges": _badges,
    "Votes": _votes,
    "PostLinks": _postlinks,
    "PostHistory": _posthistory,
    "Tags": _tags,
}


def _chunks(table: str, scale: float, seed: int) -> Iterator[pa.RecordBatch]:
    spec = TABLES[table]
    schema = arrow_schema(spec)
    if table in LOOKUP_TABLES:
        rows = LOOKUP_ROWS[table]
        yield pa.RecordBatch.from_arrays(
            [pa.array([r[0] for r in rows], pa.int32()), pa.array([r[1] for r in rows], pa.string())], schema=schema
        )
        return
    total = row_count(table, scale)
    last = int(row_id(table, np.array([total - 1]), seed)[0])
    if last > _INT32_MAX:
        raise ConfigurationError(f"scale {scale} makes Ids beyond int range (last Id {last})", table=spec.qualified_name)
    ctx = _Ctx(seed, scale, row_count("Users", scale), row_count("Posts", scale))
    build = _BUILDERS[table]
    for c, start in enumerate(range(0, total, CHUNK_ROWS)):
        j = np.arange(start, min(start + CHUNK_ROWS, total), dtype=np.int64)
        rng = np.random.default_rng([seed & 0xFFFFFFFF, _CODE[table], c])
        cols = build(ctx, rng, spec, j, total)
        yield pa.RecordBatch.from_arrays([cols[name] for name in schema.names], schema=schema)


def generate(table: str, scale: float = 0.001, seed: int = 0, batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
    """Stream one synthetic table.

    Args:
        table: a name of :data:`GENERATED_TABLES` (exact spelling).
        scale: 1.0 = published StackOverflow2010 row counts (> 0).
        seed: any non-negative int; same seed and scale give identical rows.
        batch_rows: at most this many rows per batch (rows, >= 1); does not change the rows.

    Yields:
        ``pa.RecordBatch`` with schema ``arrow_schema(TABLES[table])``, 1..batch_rows rows each, in Id
        order; memory is bounded by one chunk of :data:`CHUNK_ROWS` rows plus one batch.

    Raises:
        ConfigurationError: unknown table, ``scale`` <= 0, ``batch_rows`` < 1, or a scale so large that
            Ids would leave the ``int`` range.
    """
    if table not in GENERATED_TABLES:
        raise ConfigurationError(f"unknown table {table!r}; known: {', '.join(GENERATED_TABLES)}", table=table)
    if batch_rows < 1:
        raise ConfigurationError(f"batch_rows must be >= 1, got {batch_rows}", table=table)
    row_count(table, scale)
    pending: list[pa.RecordBatch] = []
    buffered = 0
    for chunk in _chunks(table, scale, seed):
        pending.append(chunk)
        buffered += chunk.num_rows
        while buffered >= batch_rows:
            whole = pa.Table.from_batches(pending)
            yield whole.slice(0, batch_rows).combine_chunks().to_batches()[0]
            rest = whole.slice(batch_rows)
            pending = rest.to_batches() if rest.num_rows else []
            buffered -= batch_rows
    if buffered:
        yield pa.Table.from_batches(pending).combine_chunks().to_batches()[0]


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


@dataclass
class SyntheticReport:
    """Result of :func:`fill_synthetic`.

    Attributes:
        scale: the scale factor used.
        seed: the seed used.
        rows: table -> rows written (rows).
        seconds: table -> wall time to generate and load (seconds).
        rss_growth_bytes: table -> how far the filling process's RSS rose while loading it
            (``CopyResult.rss_growth_bytes``, bytes): within the copy budget plus a constant.
    """

    scale: float
    seed: int
    rows: dict[str, int] = field(default_factory=dict)
    rss_growth_bytes: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def total_rows(self) -> int:
        """Rows written over all tables (rows)."""
        return sum(self.rows.values())

    def format(self) -> str:
        """A fixed-width text table: table, rows, seconds, rows per second."""
        lines = [f"{'table':<17} {'rows':>12} {'seconds':>8} {'rows/s':>10}"]
        for name, rows in self.rows.items():
            s = self.seconds[name]
            lines.append(f"{name:<17} {rows:>12,} {s:>8.2f} {rows / s if s else 0:>10,.0f}")
        lines.append(f"{'total':<17} {self.total_rows:>12,} {sum(self.seconds.values()):>8.2f}")
        return "\n".join(lines)


class SyntheticSource(Closing):
    """Synthetic StackOverflow tables as a :class:`~include.replication.core.protocols.Source`.

    Args:
        scale: 1.0 = published StackOverflow2010 row counts (> 0).
        seed: generator seed; same seed and scale give identical rows.
        tables: the tables offered; None = the nine StackOverflow2010 tables.

    Attributes:
        dialect: the SQL Server record (the catalog uses SQL Server type names); key ranges are
            never offered (:meth:`key_bounds` is None).

    Raises:
        ConfigurationError: an unknown table or a bad scale.
    """

    dialect: Dialect = MSSQL

    def __init__(self, scale: float, seed: int = 0, tables: Iterable[str] | None = None) -> None:
        self.scale = scale
        self.seed = seed
        self.tables = list(tables) if tables is not None else list(GENERATED_TABLES[:9])
        for name in self.tables:
            if name not in GENERATED_TABLES:
                raise ConfigurationError(f"unknown table {name!r}; known: {', '.join(GENERATED_TABLES)}", table=name)
            row_count(name, scale)

    def list_tables(self, schema: str | None = None) -> list[str]:
        """The tables offered, in generation order (the schema is ignored: one schema)."""
        return list(self.tables)

    def describe(self, table: str, schema: str | None = None) -> TableSpec:
        """The catalog of ``table`` (:data:`include.stackoverflow.schema.TABLES`), its ``row_estimate``
        the rows at this source's scale (:func:`row_count`), as a real catalog's estimate would be.

        Raises:
            ConfigurationError: a table this source does not offer.
        """
        if table not in self.tables:
            raise ConfigurationError(f"table {table!r} is not generated here; offered: {', '.join(self.tables)}", table=table)
        return replace(TABLES[table], row_estimate=row_count(table, self.scale))

    def count_rows(self, spec: TableSpec) -> int:
        """Rows the table has at this scale (:func:`row_count`)."""
        return row_count(spec.name, self.scale)

    def key_bounds(self, spec: TableSpec) -> tuple[int, int] | None:
        """Always None: the generator streams a table from its first row."""
        return None

    def read_batches(
        self,
        spec: TableSpec,
        *,
        batch_rows: int,
        batch_bytes: int,
        key_range: KeyRange | None = None,
        row_filter: RowFilter | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """Generate the table in Id order: RecordBatches with ``arrow_schema(spec)``, at most
        ``batch_rows`` rows and about ``batch_bytes`` bytes each.

        Raises:
            ConfigurationError: a key range was asked for.

        A ``row_filter`` is applied to the generated batches (:func:`rowfilter.filter_batches`).
        """
        if key_range is not None:
            raise ConfigurationError("the synthetic source cannot be read by key range", table=spec.qualified_name)
        # straight from the generator's fixed chunks (CHUNK_ROWS rows, ~24 MB of Posts): a batch of
        # ``batch_rows`` rows combined first would hold 50,000 Posts rows (~70 MB) twice, and the
        # buffered slices of it would pin every such parent batch (the fill peaked at 1.1 GiB)
        yield from rebatch(
            filter_batches(_chunks(spec.name, self.scale, self.seed), row_filter),
            max_rows=batch_rows, max_bytes=batch_bytes,
            table=spec.qualified_name,
        )




def fill_synthetic(
    endpoint: Endpoint,
    scale: float,
    seed: int = 0,
    tables: Iterable[str] | None = None,
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    settings: CopySettings | None = None,
) -> SyntheticReport:
    """Create and fill synthetic tables in ``endpoint``: ``prepare_table`` then
    ``pipeline.copy_table`` from a :class:`SyntheticSource`, table by table.

    Args:
        endpoint: the target database.
        scale: 1.0 = published StackOverflow2010 row counts.
        seed: generator seed.
        tables: table names; None = the nine StackOverflow2010 tables.
        batch_rows: rows per RecordBatch.
        settings: copy settings (memory budget, spill root); default :class:`CopySettings` with
            ``batch_rows``.

    Returns:
        Rows and seconds per table.

    Raises:
        ConfigurationError: bad table, scale or batch size.
        DataError: the target refused a value (cannot happen with the generator's own schema).
        TargetError / ValidationError: loading failed or row counts differ.
    """
    report = SyntheticReport(scale, seed)
    settings = settings or CopySettings(batch_rows=batch_rows, run_id=f"synthetic-{scale}-{seed}", label="synthetic")
    with SyntheticSource(scale, seed, tables) as source, open_target(endpoint) as target:
        for name in source.list_tables():
            spec = source.describe(name)
            t0 = time.perf_counter()
            target.prepare_table(spec)
            result = copy_table(source, target, spec, settings)
            if result.rows_written != row_count(name, scale):
                raise DataError(f"wrote {result.rows_written} rows, expected {row_count(name, scale)}", table=spec.qualified_name)
            report.rows[name] = result.rows_written
            report.seconds[name] = time.perf_counter() - t0
            report.rss_growth_bytes[name] = result.rss_growth_bytes
            log.info("synthetic %s: %s rows in %.2f s", name, result.rows_written, report.seconds[name])
    return report
