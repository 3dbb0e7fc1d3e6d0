"""A Stack Exchange data-dump folder as a Source of the StackOverflow2010 schema, and its importer.

A dump folder holds one XML file per table (``Posts.xml``, ``Users.xml``, ``Votes.xml``,
``Comments.xml``, ``Badges.xml``, ``PostLinks.xml`` and, in some dumps, ``PostHistory.xml`` and
``Tags.xml``), each a root element with one ``<row Attr="value" .../>`` per row; an absent
attribute is NULL. Each file is read with :func:`xml.etree.ElementTree.iterparse`, every element
is cleared as soon as it is read, and rows are gathered column by column into
``pyarrow.RecordBatch``\\ es of at most ``batch_rows`` rows with the exact schema
``include.replication.core.typemap.arrow_schema(spec)``: memory is flat in the file size (one batch of
text at a time). Values are converted per column (Arrow casts), not per row.

:class:`DumpSource` is a :class:`~include.replication.core.protocols.Source` like a database:
its catalog is :data:`include.stackoverflow.schema.TABLES` (SQL Server types, as published), and
:func:`import_dump` fills a database by ``pipeline.copy_table`` from it, so dump rows pass the same
SpillingBuffer, value checks and copy units as the product's (one transaction per table, so a
re-run gives the same database). The lookup tables (LinkTypes, PostTypes, VoteTypes, PostHistoryTypes) have no dump file and are filled from
:data:`include.stackoverflow.schema.LOOKUP_ROWS`. PostHistory and PostHistoryTypes are imported
only when ``PostHistory.xml`` exists, Tags only when ``Tags.xml`` exists.

Mismatch rule (the one rule for dump rows that do not fit the schema):

1. A dump attribute the table has no column for (``Badges.Class``, ``Posts.ContentLicense``,
   ``Users.ProfileImageUrl``, ...) is dropped; every dropped value is counted per attribute in
   the import report (``dropped_attributes``).
2. A table column absent from a row is NULL when the column is nullable (``Users.Age``,
   ``Users.EmailHash`` are always NULL for recent dumps).
3. A NOT NULL column absent from a row gets the documented default of its type,
   :data:`ABSENT_DEFAULTS` (``0`` for ``int``, as the original importer did for
   ``Posts.ViewCount`` of answers), and every such value is counted per column in the report
   (``defaulted``). The primary key ``Id`` and NOT NULL columns of other types (text, datetime,
   uniqueidentifier) have no default: absent, they raise :class:`DataError`.
4. Anything else that cannot be held exactly raises
   :class:`include.replication.core.errors.DataError` naming table, column and the row's ``Id``:
   text longer than its column or a NUL character (``checks.check_batch`` against the SQL Server
   Dialect record: lengths in UTF-16 code units, ``nvarchar``'s measure, which is never below
   PostgreSQL's character count, so an imported database can be copied to either), an unparsable
   integer / date / GUID, an integer outside ``int`` range, a date outside SQL Server
   ``datetime``'s range (1753-01-01 to 9999-12-31) or off its 1/300 s ticks (also
   ``check_batch``). Malformed XML raises :class:`DataError`
   naming the table and the last good row Id.

Measured on the three real dumps in ../shared/stackexchange (bicycles.meta, conlang.meta,
quantumcomputing): no text exceeds its StackOverflow2010 column. Longest values against their
limits: Comments.Text 600/700, Posts.Title 142/250, Posts.Tags 106/150, Users.DisplayName 30/40,
Users.Location 79/100, Users.WebsiteUrl 161/200, Badges.Name 18/40,
Posts.LastEditorDisplayName 9/40, PostHistory.UserDisplayName 9/40, Tags.TagName 33/150.
Dropped attributes seen: Badges.Class, Badges.TagBased, Comments.ContentLicense,
Comments.UserDisplayName, Posts.ContentLicense, Posts.OwnerDisplayName, PostHistory.ContentLicense,
Users.ProfileImageUrl, Tags.IsRequired, Tags.IsModeratorOnly. Defaulted: Posts.ViewCount (every
non-question post).

Command line (:mod:`include.stackoverflow.cli`)::

    python -m include.stackoverflow import-dump DUMP_FOLDER --uri postgresql://user@host/db
"""

from __future__ import annotations

import logging
import time
import uuid
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from include.replication.core.batching import rebatch
from include.replication.core.catalog import ColumnSpec, TableSpec
from include.replication.core.checks import check_batch
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
from include.stackoverflow.schema import LOOKUP_ROWS, TABLES

__all__ = [
    "DUMP_FILES",
    "ABSENT_DEFAULTS",
    "TableImport",
    "ImportReport",
    "DumpSource",
    "read_dump_batches",
    "lookup_batches",
    "plan_import",
    "import_dump",
]

log = logging.getLogger(__name__)

DUMP_FILES: dict[str, str] = {
    "Badges": "Badges.xml",
    "Comments": "Comments.xml",
    "PostLinks": "PostLinks.xml",
    "Posts": "Posts.xml",
    "Users": "Users.xml",
    "Votes": "Votes.xml",
    "PostHistory": "PostHistory.xml",
    "Tags": "Tags.xml",
}
"""Table name -> dump file name, for every table that has a dump file."""

ABSENT_DEFAULTS: dict[str, object] = {"int": 0}
"""Source type -> value stored for an absent NOT NULL column (rule 3 of the module docstring)."""



@dataclass
class TableImport:
    """What was imported into one table.

    Attributes:
        table: table name (``Posts``).
        source: the dump file name, or ``LOOKUP_ROWS`` for a lookup table.
        rows: rows written (rows).
        batches: RecordBatches written.
        dropped_attributes: dump attribute -> values dropped (rule 1).
        defaulted: column -> absent NOT NULL values stored as the default (rule 3).
        seconds: wall time of the table's import, parse and load (seconds).
    """

    table: str
    source: str
    rows: int = 0
    batches: int = 0
    dropped_attributes: Counter[str] = field(default_factory=Counter)
    defaulted: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0


@dataclass
class ImportReport:
    """Result of :func:`import_dump`: one :class:`TableImport` per table, in load order.

    Attributes:
        folder: the dump folder read.
        tables: per-table results.
        seconds: total wall time (seconds).
    """

    folder: Path
    tables: list[TableImport] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def total_rows(self) -> int:
        """Rows written over all tables (rows)."""
        return sum(t.rows for t in self.tables)

    def table(self, name: str) -> TableImport:
        """The result of one table. Raises ``KeyError`` if it was not imported."""
        for t in self.tables:
            if t.table == name:
                return t
        raise KeyError(name)

    def format(self) -> str:
        """A fixed-width text table: table, rows, seconds, dropped attributes, defaulted values."""
        lines = [f"{'table':<17} {'rows':>10} {'seconds':>8}  dropped attributes / defaulted values"]
        for t in self.tables:
            dropped = ", ".join(f"{k}={v}" for k, v in sorted(t.dropped_attributes.items())) or "-"
            default = ", ".join(f"{k}={v}" for k, v in sorted(t.defaulted.items())) or "-"
            lines.append(f"{t.table:<17} {t.rows:>10,} {t.seconds:>8.2f}  dropped: {dropped}; defaulted: {default}")
        lines.append(f"{'total':<17} {self.total_rows:>10,} {self.seconds:>8.2f}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Column conversion: lists of attribute strings (None = absent) -> Arrow arrays of the exact type
# ---------------------------------------------------------------------------------------------


def _first_bad(values: Sequence[str | None], ok: Callable[[str], bool]) -> int:
    for i, v in enumerate(values):
        if v is not None and not ok(v):
            return i
    return -1


def _parses(typ: pa.DataType) -> Callable[[str], bool]:
    def ok(v: str) -> bool:
        try:
            pa.array([v], pa.string()).cast(typ)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return False
        return True

    return ok


def _key(value: str | None) -> int | str | None:
    """A dump row's ``Id`` as the row key of an error: the integer, or the text when it is not one."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return value


def _convert(
    spec: TableSpec,
    col: ColumnSpec,
    values: list[str | None],
    ids: list[str | None],
    target_type: pa.DataType,
    defaulted: Counter[str],
) -> pa.Array:
    """Convert one column of attribute strings to an Arrow array of ``target_type``.

    Raises:
        DataError: a value that cannot be held exactly (see the module's mismatch rule).
    """
    table = spec.qualified_name
    raw = pa.array(values, pa.string())
    if col.source_type in ("nvarchar", "varchar", "nchar", "char"):
        arr = raw  # lengths and NUL: checks.check_batch on the whole batch (read_dump_batches)
    elif col.source_type == "uniqueidentifier":
        guids: list[bytes | None] = []
        for i, v in enumerate(values):
            try:
                guids.append(None if v is None else uuid.UUID(v).bytes)
            except ValueError:
                raise DataError(f"unparsable GUID {v[:40]!r}", table=table, column=col.name, key=_key(ids[i])) from None  # type: ignore[index]
        arr = pa.ExtensionArray.from_storage(target_type, pa.array(guids, pa.binary(16)))
    else:
        try:
            arr = raw.cast(target_type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            i = _first_bad(values, _parses(target_type))
            raise DataError(
                f"unparsable {col.source_type} value {values[i][:40]!r}",  # type: ignore[index]
                table=table,
                column=col.name,
                key=_key(ids[i]),
            ) from None
    if not col.nullable and arr.null_count:
        default = ABSENT_DEFAULTS.get(col.source_type)
        if default is None or col.name in spec.primary_key:
            i = arr.is_null().to_pylist().index(True)
            raise DataError("NOT NULL column absent from the row and it has no default", table=table, column=col.name, key=_key(ids[i]))
        defaulted[col.name] += arr.null_count
        arr = pc.fill_null(arr, pa.scalar(default, target_type))
    return arr


# ---------------------------------------------------------------------------------------------
# Readers
# ---------------------------------------------------------------------------------------------


def read_dump_batches(
    path: Path,
    spec: TableSpec,
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    stats: TableImport | None = None,
) -> Iterator[pa.RecordBatch]:
    """Stream one dump XML file as RecordBatches of the table's schema.

    Args:
        path: the XML file (``Posts.xml``).
        spec: the table the rows go into (its columns decide what is kept).
        batch_rows: at most this many rows per batch (rows, >= 1).
        stats: when given, receives rows, batches, dropped attributes and defaulted values.

    Yields:
        ``pa.RecordBatch`` with schema ``arrow_schema(spec)``, at most ``batch_rows`` rows each, in
        file order; no batch is empty (an empty file yields nothing).

    Raises:
        DataError: a value that cannot be held exactly, or malformed XML (names table, column, Id).
        ConfigurationError: ``batch_rows`` < 1.
        OSError: the file cannot be read.
    """
    if batch_rows < 1:
        raise ConfigurationError(f"batch_rows must be >= 1, got {batch_rows}", table=spec.qualified_name)
    schema = arrow_schema(spec)
    names = spec.column_names
    name_set = frozenset(names)
    stats = stats if stats is not None else TableImport(spec.name, path.name)
    dropped = stats.dropped_attributes
    columns: dict[str, list[str | None]] = {n: [] for n in names}
    appenders = [(columns[n].append, n) for n in names]
    n_rows = 0
    last_id: str | None = None

    def flush() -> pa.RecordBatch:
        ids = columns["Id"] if "Id" in columns else [None] * n_rows
        arrays = [
            _convert(spec, c, columns[c.name], ids, f.type, stats.defaulted)  # type: ignore[arg-type]
            for c, f in zip(spec.columns, schema, strict=True)
        ]
        for lst in columns.values():
            lst.clear()
        batch = pa.RecordBatch.from_arrays(arrays, schema=schema)
        check_batch(spec, batch, MSSQL)  # lengths in UTF-16 code units, no NUL, datetime range and ticks
        stats.rows += batch.num_rows
        stats.batches += 1
        return batch

    root = None
    try:
        for event, elem in ET.iterparse(path, events=("start", "end")):
            if event == "start":
                if root is None:
                    root = elem
                continue
            if elem.tag != "row":
                continue
            attrib = elem.attrib
            for append, n in appenders:
                append(attrib.get(n))
            extra = attrib.keys() - name_set
            for k in extra:
                dropped[k] += 1
            last_id = attrib.get("Id")
            n_rows += 1
            elem.clear()
            if root is not None:
                root.clear()
            if n_rows == batch_rows:
                yield flush()
                n_rows = 0
    except ET.ParseError as exc:
        raise DataError(
            f"malformed XML in {path.name}: {exc} (after row Id {last_id})", table=spec.qualified_name, key=_key(last_id)
        ) from exc
    if n_rows:
        yield flush()


def lookup_batches(spec: TableSpec) -> Iterator[pa.RecordBatch]:
    """Yield the fixed rows of a lookup table as one RecordBatch with ``arrow_schema(spec)``.

    Raises:
        KeyError: ``spec`` is not a lookup table of :data:`LOOKUP_ROWS`.
    """
    rows = LOOKUP_ROWS[spec.name]
    schema = arrow_schema(spec)
    yield pa.RecordBatch.from_arrays(
        [pa.array([r[0] for r in rows], schema.field(0).type), pa.array([r[1] for r in rows], schema.field(1).type)],
        schema=schema,
    )


def plan_import(folder: Path, tables: Iterable[str] | None = None) -> list[tuple[TableSpec, Path | None]]:
    """Decide which tables a dump folder fills, in load order.

    The six core dump tables are required; PostHistory and PostHistoryTypes come with
    ``PostHistory.xml``, Tags with ``Tags.xml``; the lookup tables always.

    Args:
        folder: the dump folder.
        tables: restrict to these table names (exact spelling); None = every table the folder allows.

    Returns:
        (spec, dump file or None for a lookup table) per table.

    Raises:
        ConfigurationError: the folder is missing, a required dump file is missing, or an unknown or
            unavailable table was asked for.
    """
    if not folder.is_dir():
        raise ConfigurationError(f"dump folder {folder} does not exist")
    available: dict[str, Path | None] = {}
    for name in ("Users", "Posts", "Comments", "Badges", "Votes", "PostLinks"):
        path = folder / DUMP_FILES[name]
        if not path.is_file() and (tables is None or name in tables):
            raise ConfigurationError(f"{path.name} missing from dump folder {folder}", table=name)
        available[name] = path
    if (folder / "PostHistory.xml").is_file():
        available["PostHistory"] = folder / "PostHistory.xml"
        available["PostHistoryTypes"] = None
    if (folder / "Tags.xml").is_file():
        available["Tags"] = folder / "Tags.xml"
    for name in ("LinkTypes", "PostTypes", "VoteTypes"):
        available[name] = None
    wanted = list(available) if tables is None else list(tables)
    for name in wanted:
        if name not in available:
            raise ConfigurationError(
                f"table {name!r} cannot be imported from {folder}; available: {', '.join(available)}", table=name
            )
    return [(TABLES[n], available[n]) for n in available if n in wanted]


class DumpSource(Closing):
    """A dump folder read as a :class:`~include.replication.core.protocols.Source`.

    Tables are those :func:`plan_import` allows for the folder; their catalog is
    :data:`include.stackoverflow.schema.TABLES` (SQL Server types, schema ``dbo``). Reading a table
    again re-parses its file. Per-table mismatch figures (dropped attributes, defaulted values)
    accumulate in :attr:`imports`.

    Args:
        folder: the dump folder (``Posts.xml``, ...).
        tables: restrict to these tables (exact names); None = every table the folder allows.

    Attributes:
        dialect: the SQL Server record: the catalog uses SQL Server type names. Key ranges are
            never offered (:meth:`key_bounds` is None): an XML file is read front to back.
        imports: table name -> :class:`TableImport` of the last read.

    Raises:
        ConfigurationError: see :func:`plan_import`.
    """

    dialect: Dialect = MSSQL

    def __init__(self, folder: Path, tables: Iterable[str] | None = None) -> None:
        self.folder = Path(folder)
        self._plan = {spec.name: (spec, path) for spec, path in plan_import(self.folder, tables)}
        self.imports: dict[str, TableImport] = {}

    def list_tables(self, schema: str | None = None) -> list[str]:
        """The tables this folder fills, in load order (the schema is ignored: one schema)."""
        return list(self._plan)

    def describe(self, table: str, schema: str | None = None) -> TableSpec:
        """The StackOverflow2010 catalog of ``table``.

        Raises:
            ConfigurationError: the folder does not fill that table.
        """
        try:
            return self._plan[table][0]
        except KeyError:
            raise ConfigurationError(
                f"table {table!r} is not in dump folder {self.folder}; available: {', '.join(self._plan)}", table=table
            ) from None

    def count_rows(self, spec: TableSpec) -> int:
        """Rows of the table in the dump (counts ``<row`` elements: reads the whole file).

        Raises:
            DataError: malformed XML.
        """
        path = self._plan[spec.name][1]
        if path is None:
            return len(LOOKUP_ROWS[spec.name])
        count = 0
        try:
            for _, elem in ET.iterparse(path, events=("end",)):
                if elem.tag == "row":
                    count += 1
                elem.clear()
        except ET.ParseError as exc:
            raise DataError(f"malformed XML in {path.name}: {exc}", table=spec.qualified_name) from exc
        return count

    def key_bounds(self, spec: TableSpec) -> tuple[int, int] | None:
        """Always None: a dump file is read front to back, never by key range."""
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
        """Stream one table as RecordBatches with ``arrow_schema(spec)`` in file order (the dumps
        are written in Id order), at most ``batch_rows`` rows and about ``batch_bytes`` bytes each.

        Raises:
            ConfigurationError: a key range was asked for.
            DataError: a value that cannot be held exactly (the module's mismatch rule).

        A ``row_filter`` is applied to the batches as they are read (:func:`rowfilter.filter_batches`).
        """
        if key_range is not None:
            raise ConfigurationError("a dump folder cannot be read by key range", table=spec.qualified_name)
        path = self._plan[spec.name][1]
        stats = TableImport(spec.name, path.name if path else "LOOKUP_ROWS")
        self.imports[spec.name] = stats
        batches = lookup_batches(spec) if path is None else read_dump_batches(path, spec, batch_rows=batch_rows, stats=stats)
        yield from rebatch(
            filter_batches(batches, row_filter), max_rows=batch_rows, max_bytes=batch_bytes, table=spec.qualified_name
        )
        if path is None:
            stats.rows, stats.batches = len(LOOKUP_ROWS[spec.name]), 1




def import_dump(
    folder: Path,
    endpoint: Endpoint,
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    tables: Iterable[str] | None = None,
    settings: CopySettings | None = None,
) -> ImportReport:
    """Create the StackOverflow schema in ``endpoint`` and fill it from a dump folder.

    Each table is prepared (dropped and re-created) and copied by ``pipeline.copy_table`` from a
    :class:`DumpSource`: one transaction per table, then primary key and identity alignment, so
    re-running gives the same database.

    Args:
        folder: the dump folder (``Posts.xml``, ...).
        endpoint: the target database (PostgreSQL or SQL Server).
        batch_rows: rows per RecordBatch (rows).
        tables: restrict to these tables; None = all the folder allows (see :func:`plan_import`).
        settings: copy settings (memory budget, spill root); default :class:`CopySettings` with
            ``batch_rows``.

    Returns:
        The per-table :class:`ImportReport`.

    Raises:
        ConfigurationError: bad folder, table list or endpoint.
        DataError: a dump value that cannot be held exactly (names table, column, Id).
        TargetError: the target failed (retryable).
        ValidationError: the target's row count differs from the rows sent.
    """
    report = ImportReport(Path(folder))
    settings = settings or CopySettings(batch_rows=batch_rows, run_id="dump-import", label="dump-import")
    t_start = time.perf_counter()
    with DumpSource(Path(folder), tables) as source, open_target(endpoint) as target:
        for name in source.list_tables():
            spec = source.describe(name)
            t0 = time.perf_counter()
            target.prepare_table(spec)
            result = copy_table(source, target, spec, settings)
            stats = source.imports[name]
            if result.rows_written != stats.rows:  # the committed count was checked; this guards the source
                raise DataError(f"target wrote {result.rows_written} rows, dump had {stats.rows}", table=spec.qualified_name)
            stats.seconds = time.perf_counter() - t0
            report.tables.append(stats)
            log.info(
                "imported %s: %s rows, %s batches, %.2f s, dropped %s, defaulted %s",
                spec.name, stats.rows, stats.batches, stats.seconds, dict(stats.dropped_attributes), dict(stats.defaulted),
            )
    report.seconds = time.perf_counter() - t_start
    return report
