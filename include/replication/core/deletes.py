"""Delete detection of the ``merge`` mode: the keys the target holds that the source no longer has.

Both sides stream their single integer primary key only, ascending (each reader's ``ORDER BY``
the key), in batches; :func:`missing_keys` merge-joins the two streams holding one batch per side,
so memory stays bounded (two key batches) whatever the table's size. ``delete_mode`` (param, per
run) says what a merge run does with them:

* ``ignore`` (default): nothing is read;
* ``report``: count them and log / audit the count and the first :data:`SAMPLE_KEYS` keys;
* ``apply``: also delete them from the live table, in the merge's transaction (the keys are staged
  in ``<table>__merge_del`` first, so the delete is one statement however many there are).

Only tables with a single integer primary key: two databases' text collations may order other keys
differently, which a merge-join cannot take. Pure logic, no driver.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Literal, get_args

import numpy as np
import pyarrow as pa

from include.replication.core.catalog import TableSpec
from include.replication.core.errors import ConfigurationError

__all__ = ["DeleteMode", "DELETE_MODES", "SAMPLE_KEYS", "delete_mode", "key_spec", "missing_keys", "key_batches"]

DeleteMode = Literal["ignore", "report", "apply"]
"""What a merge run does with keys deleted in the source: nothing, report them, or delete them."""
DELETE_MODES: tuple[str, ...] = get_args(DeleteMode)
SAMPLE_KEYS = 10
"""Deleted keys named in the task log and the audit row (the first ones, ascending)."""


def delete_mode(params: Mapping[str, Any] | None) -> DeleteMode:
    """The param ``delete_mode`` (default ``ignore``).

    Raises:
        ConfigurationError: another value.
    """
    value = (params or {}).get("delete_mode") or "ignore"
    if value not in DELETE_MODES:
        raise ConfigurationError(f"delete_mode must be one of {list(DELETE_MODES)}, got {value!r}")
    return value  # type: ignore[return-value]


def key_spec(spec: TableSpec, name: str | None = None) -> TableSpec:
    """``spec`` reduced to its primary-key columns (a reader of it streams the keys only, ordered
    by them), under ``name`` when given (the staging table of the keys to delete); no identity,
    indexes or foreign keys."""
    keys = tuple(dataclasses.replace(spec.column(k), identity=False, generated=None) for k in spec.primary_key)
    return dataclasses.replace(
        spec, name=name or spec.name, columns=keys, identity=None, indexes=(), foreign_keys=(), primary_key_name=None
    )


def _arrays(batches: Iterable[pa.RecordBatch], key: str) -> Iterator[np.ndarray]:
    for batch in batches:
        if batch.num_rows:
            yield batch.column(batch.schema.get_field_index(key)).to_numpy(zero_copy_only=False).astype(np.int64)


def missing_keys(source: Iterable[pa.RecordBatch], target: Iterable[pa.RecordBatch], key: str) -> Iterator[np.ndarray]:
    """The keys of ``target`` that ``source`` lacks, ascending, one array per step.

    Args:
        source: batches holding column ``key`` (int64-able, strictly ascending across batches).
        target: the same from the target.
        key: the key column.

    Yields:
        ``np.ndarray`` of int64 keys (never empty); at most one target batch's worth each.

    Raises:
        ValueError: a side's keys are not ascending (the merge-join would be wrong).
    """
    src_it, tgt_it = _checked(_arrays(source, key), "source"), _checked(_arrays(target, key), "target")
    s = next(src_it, None)
    for t in tgt_it:
        while t.size:
            while s is not None and s.size and s[-1] < t[0]:
                s = next(src_it, None)  # source keys below every remaining target key: not deletes
            if s is None:
                yield t  # the source has nothing from here on
                break
            bound = min(int(t[-1]), int(s[-1]))
            t_cut = int(np.searchsorted(t, bound, side="right"))
            s_cut = int(np.searchsorted(s, bound, side="right"))
            part = t[:t_cut]
            gone = part[~np.isin(part, s[:s_cut], assume_unique=True)]
            if gone.size:
                yield gone
            t, s = t[t_cut:], s[s_cut:]
            if not s.size:
                s = next(src_it, None)


def _checked(arrays: Iterator[np.ndarray], side: str) -> Iterator[np.ndarray]:
    last: int | None = None
    for a in arrays:
        if (a.size > 1 and bool(np.any(a[1:] <= a[:-1]))) or (last is not None and int(a[0]) <= last):
            raise ValueError(f"the {side}'s keys are not strictly ascending")
        last = int(a[-1])
        yield a


def key_batches(arrays: Iterable[np.ndarray], key: str, arrow_type: pa.DataType) -> Iterator[pa.RecordBatch]:
    """The arrays of :func:`missing_keys` as one-column RecordBatches (``key`` of ``arrow_type``)."""
    schema = pa.schema([pa.field(key, arrow_type, nullable=False)])
    for a in arrays:
        yield pa.record_batch([pa.array(a, type=arrow_type)], schema=schema)
