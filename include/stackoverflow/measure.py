"""Measure null rates, text lengths, Id gaps and the post-type mix on real dump folders.

The figures feed the synthetic generator: they are committed as ``measured.json`` beside this
module (:data:`MEASURED_JSON`, read by :func:`load_measured`). How they are measured: every
dump file of the given folders is read with :func:`dump.read_dump_batches` (so the figures
are of the StackOverflow2010 columns after the import's mismatch rule), and the counts are pooled
over all folders (a sum of rows, not an average of per-site rates). Posts are measured per post
group (``question`` = PostTypeId 1, ``answer`` = 2, ``other`` = 3-8) because most columns are
group-specific (Title, Tags, ViewCount on questions; ParentId on answers).

Per column: ``null`` = fraction of rows where the value is NULL (0..1); for text columns also
``mu`` / ``sigma`` = mean / standard deviation of ln(length in characters) over non-NULL non-empty
values and ``max`` = longest value (characters); for the :data:`CATEGORICAL` columns ``values`` =
share of rows holding each of the 40 most frequent values. Per table: ``gap`` = 1 - rows / (max Id - min
positive Id + 1), the fraction of Ids missing (deleted rows).

Run ``python -m include.stackoverflow measure [FOLDER ...] [--write]`` (default: every folder of
../shared/stackexchange) to print the figures as JSON, or rewrite ``measured.json``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from include.stackoverflow.dump import DUMP_FILES, read_dump_batches
from include.stackoverflow.schema import TABLES

__all__ = [
    "CATEGORICAL",
    "POST_GROUPS",
    "MEASURED_JSON",
    "post_group",
    "measure",
    "default_dump_folders",
    "dumps_json",
    "load_measured",
]

MEASURED_JSON = Path(__file__).with_name("measured.json")
"""The committed figures (``dumps_json(measure(default_dump_folders()))``)."""

CATEGORICAL: dict[str, tuple[str, ...]] = {
    "Votes": ("VoteTypeId",),
    "PostLinks": ("LinkTypeId",),
    "PostHistory": ("PostHistoryTypeId",),
    "Badges": ("Name",),
}
"""Columns whose value mix is measured (share of each value, the 40 most frequent)."""

POST_GROUPS: dict[str, tuple[int, ...]] = {"question": (1,), "answer": (2,), "other": (3, 4, 5, 6, 7, 8)}
"""Post group -> PostTypeIds it covers."""


def post_group(post_type_id: int) -> str:
    """The post group (``question``/``answer``/``other``) of a PostTypeId."""
    return next((g for g, ids in POST_GROUPS.items() if post_type_id in ids), "other")


class _Acc:
    def __init__(self) -> None:
        self.rows = 0
        self.nulls: dict[str, int] = defaultdict(int)
        self.logs: dict[str, list[np.ndarray]] = defaultdict(list)
        self.max: dict[str, int] = defaultdict(int)

    def add(self, batch: pa.RecordBatch | pa.Table, text_columns: Sequence[str]) -> None:
        self.rows += batch.num_rows
        for name in batch.schema.names:
            col = batch.column(name)
            self.nulls[name] += col.null_count
            if name in text_columns:
                lengths = pc.utf8_length(col).drop_null().to_numpy(zero_copy_only=False)
                lengths = lengths[lengths > 0]
                if len(lengths):
                    self.logs[name].append(np.log(lengths))
                    self.max[name] = max(self.max[name], int(lengths.max()))

    def result(self, names: Iterable[str], text_columns: Sequence[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in names:
            entry: dict[str, float | int] = {"null": round(self.nulls[name] / self.rows, 4) if self.rows else 0.0}
            if name in text_columns:
                logs = np.concatenate(self.logs[name]) if self.logs[name] else np.array([0.0])
                entry.update(mu=round(float(logs.mean()), 3), sigma=round(float(logs.std()), 3), max=self.max[name])
            out[name] = entry
        return out


def measure(folders: Sequence[Path]) -> dict[str, Any]:
    """Measure the folders' dump files, pooled.

    Args:
        folders: dump folders (each with Posts.xml, ...).

    Returns:
        ``{"tables": {table: {"rows": n, "gap": g, "columns": {col: {...}}}},
        "posts": {"mix": {group: share}, "groups": {group: {col: {...}}}}}``; rates are 0..1,
        lengths in characters.

    Raises:
        DataError: a dump value the schema cannot hold.
    """
    tables: dict[str, Any] = {}
    groups = {g: _Acc() for g in POST_GROUPS}
    for name, file in DUMP_FILES.items():
        spec = TABLES[name]
        text = [c.name for c in spec.columns if c.source_type in ("nvarchar", "varchar")]
        acc = _Acc()
        values: dict[str, dict[Any, int]] = {c: defaultdict(int) for c in CATEGORICAL.get(name, ())}
        missing = 0
        span = 0
        for folder in folders:
            path = folder / file
            if not path.exists():
                continue
            ids: list[np.ndarray] = []
            for batch in read_dump_batches(path, spec, batch_rows=20_000):
                acc.add(batch, text)
                for c, counts in values.items():
                    vc = pc.value_counts(batch.column(c))
                    for v, n in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist(), strict=True):
                        counts[v] += n
                ids.append(batch.column("Id").to_numpy())
                if name == "Posts":
                    ptype = batch.column("PostTypeId").to_numpy()
                    for g, members in POST_GROUPS.items():
                        mask = np.isin(ptype, members)
                        groups[g].add(pa.Table.from_batches([batch]).filter(pa.array(mask)), text)
            if ids:
                all_ids = np.concatenate(ids)
                positive = all_ids[all_ids > 0]
                if len(positive):
                    width = int(positive.max() - positive.min() + 1)
                    span += width
                    missing += width - len(positive)
        if acc.rows:
            tables[name] = {
                "rows": acc.rows,
                "gap": round(missing / span, 4) if span else 0.0,
                "columns": acc.result(spec.column_names, text),
            }
            for c, counts in values.items():
                top = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))[:40]
                tables[name]["columns"][c]["values"] = {v: round(n / acc.rows, 4) for v, n in top}
    posts_text = [c.name for c in TABLES["Posts"].columns if c.source_type == "nvarchar"]
    total = sum(a.rows for a in groups.values())
    posts = {
        "mix": {g: round(a.rows / total, 4) for g, a in groups.items()} if total else {},
        "groups": {g: a.result(TABLES["Posts"].column_names, posts_text) for g, a in groups.items()},
    }
    return {"tables": tables, "posts": posts}


def default_dump_folders() -> list[Path]:
    """Every dump folder with a ``Posts.xml`` in ../shared/stackexchange (beside the repository)."""
    shared = Path(__file__).resolve().parents[3] / "shared" / "stackexchange"
    return sorted(p for p in shared.iterdir() if (p / "Posts.xml").exists()) if shared.is_dir() else []


def _json_safe(figures: Any) -> Any:
    """``values`` maps (value -> share) become ``[[value, share], ...]`` so integer values stay integers."""
    if isinstance(figures, dict):
        return {k: ([[v, n] for v, n in val.items()] if k == "values" else _json_safe(val)) for k, val in figures.items()}
    return figures


def _from_json(figures: Any) -> Any:
    if isinstance(figures, dict):
        return {k: ({v: n for v, n in val} if k == "values" else _from_json(val)) for k, val in figures.items()}
    return figures


def dumps_json(figures: dict[str, Any]) -> str:
    """The figures of :func:`measure` as the text of ``measured.json`` (stable order, 2-space indent)."""
    return json.dumps(_json_safe(figures), indent=2) + "\n"


def load_measured(path: Path = MEASURED_JSON) -> dict[str, Any]:
    """Read ``measured.json`` back into the structure :func:`measure` returns.

    Raises:
        OSError: the file cannot be read.
        ValueError: it is not JSON.
    """
    return _from_json(json.loads(path.read_text()))
