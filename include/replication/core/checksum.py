"""Checksum validation: prove a target table holds the source's rows, value for value, and name the
first row that differs.

Both sides are read through the product's own readers (:meth:`Source.read_batches`; the target
database is opened as a Source of its dialect) and brought to one canonical Arrow form: the
schema the target's writer ingests (:func:`typemap.target_arrow_schema`), so SQL Server
``datetime2`` text and a PostgreSQL ``timestamp`` compare as the same instant. Each side's rows
are reduced, batch by batch, to an order-independent :class:`rowhash.Digest` (row count, sum and
XOR of 64-bit row hashes), so memory stays at a few batches whatever the table's size.

On a mismatch, a table with a single integer primary key is bisected by half-open key range
(:mod:`core.keyranges`): the lower half is digested on both sides; if it differs the search goes
on there, else in the upper half, until a range of at most ``leaf_keys`` keys is left, whose rows
are compared one by one. That names the smallest differing key (a changed value: column, source
value, target value; a row only in the source: ``missing``; only in the target: ``extra``) at the
cost of about one more read of the table per side. Tables without such a key report the mismatch
without a key.

No database driver here: only the Source protocol.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc

from include.replication.core.allocators import tune_allocators
from include.replication.core.catalog import TableSpec
from include.replication.core.dialect import Dialect
from include.replication.core.errors import ValidationError
from include.replication.core.keyranges import KeyRange, integer_key
from include.replication.core.naming import TableRef, target_schema
from include.replication.core.protocols import Source
from include.replication.core.rowfilter import RowFilter
from include.replication.core.rowhash import Digest, column_hashes, digest_batch, row_hashes
from include.replication.core.typemap import adapt_batch, rule_for, target_arrow_schema

__all__ = [
    "DEFAULT_LEAF_KEYS",
    "Difference",
    "ChecksumResult",
    "ChecksumMismatch",
    "canonical_target_batch",
    "table_digest",
    "compare_checksum",
    "checksum_tables",
    "first_difference",
    "DigestingSource",
]

log = logging.getLogger(__name__)

DEFAULT_LEAF_KEYS = 1024
"""Widest key range (keys) the bisection compares row by row."""

DifferenceKind = Literal["value", "missing", "extra"]
"""``value``: the row is on both sides with a different value; ``missing``: only in the source;
``extra``: only in the target."""


@dataclass(frozen=True)
class Difference:
    """The first row that differs between source and target.

    Attributes:
        kind: ``value``, ``missing`` (not in the target) or ``extra`` (not in the source).
        key: the row's primary-key value.
        column: the first column whose value differs (``value`` only), else None.
        source_value: the source's value of ``column`` (Python object), or None.
        target_value: the target's value of ``column``, or None.
    """

    kind: DifferenceKind
    key: object
    column: str | None = None
    source_value: object = None
    target_value: object = None

    def describe(self) -> str:
        """One line for the log and the audit row."""
        if self.kind == "missing":
            return f"key {self.key!r}: row missing in the target"
        if self.kind == "extra":
            return f"key {self.key!r}: extra row in the target (not in the source)"
        return f"key {self.key!r}, column {self.column}: source {self.source_value!r} != target {self.target_value!r}"


@dataclass(frozen=True)
class ChecksumResult:
    """Checksums of one table on both sides.

    Attributes:
        table: the ``tables`` entry.
        source: digest of the source's rows (canonical form).
        target: digest of the target's rows.
        difference: the first differing row when the digests differ and the table could be
            bisected, else None.
        seconds: wall time of the whole check, bisection included (seconds).
    """

    table: str
    source: Digest
    target: Digest
    difference: Difference | None
    seconds: float

    @property
    def ok(self) -> bool:
        """True when both digests are equal."""
        return self.source == self.target

    def summary(self) -> str:
        """``checksum ok rows:sum:xor`` or ``checksum DIFF ...`` with the first difference (at most
        4,000 characters: the audit column's width)."""
        if self.ok:
            return f"checksum ok {self.source.hex}"
        where = self.difference.describe() if self.difference else "no single integer key to bisect"
        return f"checksum DIFF source {self.source.hex} target {self.target.hex}: {where}"[:4000]

    def as_dict(self) -> dict[str, object]:
        """Plain dict (XCom-serialisable)."""
        return {
            "table": self.table,
            "ok": self.ok,
            "source": self.source.hex,
            "target": self.target.hex,
            "summary": self.summary(),
            "seconds": self.seconds,
        }


class ChecksumMismatch(ValidationError):
    """Source and target checksums of a table differ; ``key`` / ``column`` name the first differing
    row when the table could be bisected.

    Attributes:
        result: the table's :class:`ChecksumResult`.
        kind: the difference's kind, or None.
        source_value: the source's value of ``column``, or None.
        target_value: the target's value of ``column``, or None.
    """

    def __init__(self, result: ChecksumResult) -> None:
        diff = result.difference
        self.result = result
        self.kind = diff.kind if diff else None
        self.source_value = diff.source_value if diff else None
        self.target_value = diff.target_value if diff else None
        super().__init__(
            result.summary(), table=result.table, column=diff.column if diff else None, key=diff.key if diff else None
        )


def _conform(column: pa.Array, want: pa.DataType, spec: TableSpec, name: str) -> pa.Array:
    """One target column in the canonical type ``want``: unchanged, wrapped or unwrapped as an
    extension type, parsed from its dialect's text carrier (SQL Server ``datetime2`` text into a
    timestamp), or cast exactly."""
    if column.type == want:
        return column
    if isinstance(want, pa.ExtensionType) and column.type == want.storage_type:
        return pa.ExtensionArray.from_storage(want, column)
    if isinstance(column.type, pa.ExtensionType):
        column = column.storage
    carrier = rule_for(spec.dialect, spec.column(name), spec.qualified_name).carrier
    try:
        if carrier is not None and pa.types.is_timestamp(want):
            column = pc.replace_substring_regex(column, carrier.pattern, carrier.replacement)
        return column.cast(want, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ValidationError(
            f"the target's {column.type} cannot be compared as {want}: {exc}", table=spec.qualified_name, column=name
        ) from exc


def canonical_target_batch(batch: pa.RecordBatch, target_spec: TableSpec, schema: pa.Schema) -> pa.RecordBatch:
    """A batch read from the target table in the canonical schema of the source's rows.

    Args:
        batch: ``pa.RecordBatch`` with ``arrow_schema(target_spec)``.
        target_spec: the target table's catalog (read from the target).
        schema: the canonical schema (``target_arrow_schema(source_spec, target dialect)``).

    Returns:
        ``pa.RecordBatch`` with ``schema`` (columns by name, in its order).

    Raises:
        ValidationError: the target lacks a column, or holds a type that cannot be compared.
    """
    names = batch.schema.names
    arrays = []
    for field in schema:
        if field.name not in names:
            raise ValidationError(
                "the target table has no such column", table=target_spec.qualified_name, column=field.name
            )
        arrays.append(_conform(batch.column(names.index(field.name)), field.type, target_spec, field.name))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


@dataclass(frozen=True)
class _Side:
    """One side of the comparison: a reader, the table's catalog on that side, and how its batches
    become canonical."""

    reader: Source
    spec: TableSpec
    source_spec: TableSpec
    target_dialect: Dialect
    is_target: bool
    batch_rows: int
    batch_bytes: int

    @property
    def schema(self) -> pa.Schema:
        return target_arrow_schema(self.source_spec, self.target_dialect)

    def batches(self, key_range: KeyRange | None = None) -> Iterator[pa.RecordBatch]:
        schema = self.schema
        for batch in self.reader.read_batches(
            self.spec, batch_rows=self.batch_rows, batch_bytes=self.batch_bytes, key_range=key_range
        ):
            if self.is_target:
                yield canonical_target_batch(batch, self.spec, schema)
            else:
                yield adapt_batch(self.source_spec, batch, self.target_dialect)

    def digest(self, key_range: KeyRange | None = None) -> Digest:
        total = Digest()
        for batch in self.batches(key_range):
            total = total + digest_batch(batch)
        return total

    def rows(self, key_range: KeyRange) -> pa.Table:
        return pa.Table.from_batches(list(self.batches(key_range)), schema=self.schema)


def table_digest(
    reader: Source, spec: TableSpec, *, batch_rows: int, batch_bytes: int, key_range: KeyRange | None = None
) -> Digest:
    """Digest of a table (or one key range of it) exactly as ``reader`` reads it, streamed batch
    by batch (the benchmark's and the tests' entry point).

    Args:
        reader: an open Source.
        spec: the table's catalog on that side.
        batch_rows: most rows per batch.
        batch_bytes: about this many bytes per batch (bytes).
        key_range: half-open key range, or None for the whole table.

    Raises:
        SourceError: reading failed.
    """
    total = Digest()
    for batch in reader.read_batches(spec, batch_rows=batch_rows, batch_bytes=batch_bytes, key_range=key_range):
        total = total + digest_batch(batch)
    return total


def compare_checksum(
    source: Source,
    source_spec: TableSpec,
    target_reader: Source,
    target_spec: TableSpec,
    target_dialect: Dialect,
    *,
    table: str | None = None,
    batch_rows: int = 50_000,
    batch_bytes: int = 4 << 20,
    leaf_keys: int = DEFAULT_LEAF_KEYS,
    source_digest: Digest | None = None,
) -> ChecksumResult:
    """Checksum one table on both sides (the two reads run at once) and, when they differ,
    bisect to the first differing row.

    Args:
        source: the open source.
        source_spec: the table's catalog in the source (as copied).
        target_reader: the target database opened as a Source.
        target_spec: the table's catalog read from the target.
        target_dialect: the target's dialect (selects the canonical schema).
        table: the name to report (default the source's qualified name).
        batch_rows: most rows per batch read.
        batch_bytes: about this many bytes per batch read (bytes); memory is a few batches per side.
        leaf_keys: widest key range compared row by row.
        source_digest: the source's digest taken while the copy read it (:class:`DigestingSource`);
            then only the target is read, unless the digests differ and the table is bisected.

    Returns:
        The :class:`ChecksumResult` (``ok`` or not; this function does not raise on a mismatch).

    Raises:
        SourceError: reading either side failed.
        ValidationError: the target lacks a column or holds an incomparable type.
    """
    tune_allocators()  # as a copy does: Arrow on the system allocator, glibc's mmap threshold pinned
    started = time.monotonic()
    name = table or source_spec.qualified_name
    src = _Side(source, source_spec, source_spec, target_dialect, False, batch_rows, batch_bytes)
    tgt = _Side(target_reader, target_spec, source_spec, target_dialect, True, batch_rows, batch_bytes)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"checksum-{source_spec.name}") as pool:
        if source_digest is None:
            pending = pool.submit(tgt.digest)
            source_digest = src.digest()
            target_digest = pending.result()
        else:
            target_digest = tgt.digest()
        difference = None
        if source_digest != target_digest:
            difference = _bisect(src, tgt, pool, leaf_keys)
    result = ChecksumResult(name, source_digest, target_digest, difference, time.monotonic() - started)
    if result.ok:
        log.info("%s: %s (%.2f s)", name, result.summary(), result.seconds)
    else:
        log.error("%s: %s (%.2f s)", name, result.summary(), result.seconds)
    return result


def _bisect(src: _Side, tgt: _Side, pool: ThreadPoolExecutor, leaf_keys: int) -> Difference | None:
    """The smallest differing key of two sides whose whole-table digests differ, or None when the
    table has no single integer key."""
    key = integer_key(src.source_spec)
    if key is None or integer_key(tgt.spec) is None:
        return None
    bounds = [b for b in (src.reader.key_bounds(src.spec), tgt.reader.key_bounds(tgt.spec)) if b is not None]
    if not bounds:
        return None
    lo, hi = min(b[0] for b in bounds), max(b[1] for b in bounds) + 1
    steps = 0
    while hi - lo > leaf_keys:
        mid = lo + (hi - lo) // 2
        pending = pool.submit(tgt.digest, (lo, mid))
        if src.digest((lo, mid)) != pending.result():
            hi = mid
        else:
            lo = mid
        steps += 1
    log.info("%s: bisected in %d steps to keys [%d, %d)", src.source_spec.qualified_name, steps, lo, hi)
    pending_rows = pool.submit(tgt.rows, (lo, hi))
    return first_difference(src.rows((lo, hi)), pending_rows.result(), key)


def first_difference(source: pa.Table, target: pa.Table, key: str) -> Difference | None:
    """The smallest key whose rows differ between two small tables of the same canonical schema.

    Args:
        source: the source's rows of a key range.
        target: the target's rows of the same range.
        key: the key column (unique in ``source``).

    Returns:
        The difference, or None when both hold the same rows.
    """
    s_keys, t_keys = source.column(key).to_pylist(), target.column(key).to_pylist()
    s_hash, t_hash = row_hashes(source), row_hashes(target)
    s_at = {k: i for i, k in enumerate(s_keys)}
    t_at: dict[object, int] = {}
    duplicate = None
    for i, k in enumerate(t_keys):
        if k in t_at and (duplicate is None or k < duplicate):
            duplicate = k
        t_at.setdefault(k, i)
    for k in sorted(set(s_at) | set(t_at)):  # type: ignore[type-var]  # integer keys
        if k not in t_at:
            return Difference("missing", k)
        if k not in s_at or k == duplicate:
            return Difference("extra", k)
        i, j = s_at[k], t_at[k]
        if s_hash[i] == t_hash[j]:
            continue
        for name in source.column_names:
            a, b = source.column(name).slice(i, 1), target.column(name).slice(j, 1)
            if column_hashes(a)[0] != column_hashes(b)[0]:
                return Difference("value", k, name, a[0].as_py(), b[0].as_py())
    return None


def checksum_tables(
    source: Source,
    target_reader: Source,
    target_dialect: Dialect,
    tables: list[str],
    *,
    describe: Callable[[str], TableSpec] | None = None,
    schema_map: Mapping[str, str] | None = None,
    batch_rows: int = 50_000,
    batch_bytes: int = 4 << 20,
    raise_on_mismatch: bool = True,
    source_digests: Mapping[str, Digest] | None = None,
) -> list[ChecksumResult]:
    """Checksum every table of a run (one after the other) and raise on the first mismatch found
    after all were checked.

    Args:
        source: the open source.
        target_reader: the target database opened as a Source.
        target_dialect: the target's dialect.
        tables: ``Table`` or ``schema.Table`` entries (:class:`core.naming.TableRef`).
        describe: entry -> the source catalog as copied (default ``source.describe``).
        schema_map: source schema -> target schema of qualified entries.
        batch_rows: most rows per batch read.
        batch_bytes: about this many bytes per batch read (bytes).
        raise_on_mismatch: raise :class:`ChecksumMismatch` for the first table that differs.
        source_digests: entry -> the source digest its copy took (those tables' sources are not
            read again unless a mismatch is bisected).

    Returns:
        One :class:`ChecksumResult` per table, in the given order.

    Raises:
        ChecksumMismatch: a table's checksums differ (names table, key, column and both values).
        ValidationError: a target table lacks a column or holds an incomparable type.
        SourceError: reading either side failed.
    """
    results = []
    for entry in tables:
        ref = TableRef.parse(entry)
        spec = describe(entry) if describe else source.describe(ref.name, ref.schema)
        there = target_reader.describe(ref.name, target_schema(ref, schema_map))
        results.append(
            compare_checksum(
                source,
                spec,
                target_reader,
                there,
                target_dialect,
                table=entry,
                batch_rows=batch_rows,
                batch_bytes=batch_bytes,
                source_digest=(source_digests or {}).get(entry),
            )
        )
    bad = [r for r in results if not r.ok]
    if bad and raise_on_mismatch:
        raise ChecksumMismatch(bad[0])
    return results


class DigestingSource:
    """A Source that passes everything through to ``source`` and digests, in the canonical form of
    ``target_dialect``, every batch its readers yield: the copy's own read of the source gives the
    checksum's source side, so validation reads only the target (implements :class:`Source`).

    Thread-safe (parallel key ranges read on several threads). It does not own ``source``:
    ``close()`` leaves it open.

    Args:
        source: the open source the copy reads.
        target_dialect: the target's dialect (selects the canonical schema).
    """

    def __init__(self, source: Source, target_dialect: Dialect) -> None:
        self.source = source
        self.dialect = source.dialect
        self.target_dialect = target_dialect
        self._digest = Digest()
        self._lock = threading.Lock()

    @property
    def digest(self) -> Digest:
        """The digest of every row read so far (a copy reads each row once)."""
        with self._lock:
            return self._digest

    def list_tables(self, schema: str | None = None) -> list[str]:
        """``source.list_tables``."""
        return self.source.list_tables(schema)

    def describe(self, table: str, schema: str | None = None) -> TableSpec:
        """``source.describe``."""
        return self.source.describe(table, schema)

    def count_rows(self, spec: TableSpec) -> int:
        """``source.count_rows``."""
        return self.source.count_rows(spec)

    def key_bounds(self, spec: TableSpec) -> tuple[int, int] | None:
        """``source.key_bounds``."""
        return self.source.key_bounds(spec)

    def read_batches(
        self,
        spec: TableSpec,
        *,
        batch_rows: int,
        batch_bytes: int,
        key_range: KeyRange | None = None,
        row_filter: RowFilter | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """``source.read_batches``, each batch digested before it is yielded (unchanged).

        Raises:
            Whatever the source's reader raises; ``DataError`` for a value the canonical form
            cannot carry (the copy would refuse it too).
        """
        for batch in self.source.read_batches(
            spec, batch_rows=batch_rows, batch_bytes=batch_bytes, key_range=key_range, row_filter=row_filter
        ):
            part = digest_batch(adapt_batch(spec, batch, self.target_dialect))
            with self._lock:
                self._digest = self._digest + part
            yield batch

    def close(self) -> None:
        """Nothing: the wrapped source belongs to the caller."""

    def __enter__(self) -> DigestingSource:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
