"""Run one method's copy in a fresh spawned process and bring back its figures.

A fresh process per run means the peak RSS (``VmHWM`` of the child, :func:`metrics.peak_rss_bytes`)
is that method's alone, with nothing left over from an earlier run, and no import or cache of one
method warms another. The timed part is ``run(ctx)`` only: interpreter start and imports are not.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
import time
import traceback
from dataclasses import replace
from multiprocessing.connection import Connection
from typing import Any

from benchmarks.methods import method_info
from benchmarks.methods.base import RunContext

__all__ = ["run_in_child", "child_main"]

log = logging.getLogger(__name__)


def child_main(key: str, ctx: RunContext, env: dict[str, str], conn: Connection) -> None:
    """Body of the child process: import the method, time ``run``, send a dict back on ``conn``.

    The dict holds ``ok``, ``seconds`` (wall, seconds), ``cpu_s`` (the process's user + system
    CPU seconds over the same span, every thread), ``rows``, ``capped``, ``extra``,
    ``baseline_rss_bytes`` (RSS after imports, before the copy), ``peak_rss_bytes`` (bytes) and, on
    failure, ``error`` (the exception's text and traceback).
    """
    os.environ.update(env)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        from include.replication.core.metrics import current_rss_bytes, peak_rss_bytes

        info = method_info(key)
        module = importlib.import_module(f"{__package__}.{info.module}")
        ctx = replace(ctx, variant=info.variant)
        if hasattr(module, "prepare"):  # untimed setup (the driver floors' input)
            ctx = replace(ctx, prepared=module.prepare(ctx))
        baseline = current_rss_bytes()
        started, cpu_started = time.perf_counter(), time.process_time()
        outcome = module.run(ctx)
        seconds, cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
        conn.send(
            {
                "ok": True,
                "seconds": seconds,
                "cpu_s": cpu_s,
                "rows": outcome.rows,
                "capped": outcome.capped,
                "extra": outcome.extra,
                "baseline_rss_bytes": baseline,
                "peak_rss_bytes": peak_rss_bytes(),
            }
        )
    except BaseException as exc:  # reported to the parent, which records the failed run
        conn.send({"ok": False, "error": f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}"})
    finally:
        conn.close()


def run_in_child(key: str, ctx: RunContext, *, env: dict[str, str] | None = None, timeout_s: float = 1800.0) -> dict[str, Any]:
    """Run method ``key`` on ``ctx`` in a new spawned process and return its figures.

    Args:
        key: a :data:`METHODS` or :data:`TDS_METHODS` key.
        ctx: the run's context.
        env: extra environment variables for the child (Airflow connections).
        timeout_s: seconds after which the child is killed and the run recorded as failed.

    Returns:
        The dict sent by :func:`child_main`; ``{"ok": False, "error": ...}`` if the child died or
        timed out.
    """
    mp = multiprocessing.get_context("spawn")
    receiver, sender = mp.Pipe(duplex=False)
    proc = mp.Process(target=child_main, args=(key, ctx, env or {}, sender), name=f"bench-{key}")
    proc.start()
    sender.close()
    try:
        if receiver.poll(timeout_s):
            result: dict[str, Any] = receiver.recv()
        else:
            result = {"ok": False, "error": f"timed out after {timeout_s:.0f} s"}
    except EOFError:
        result = {"ok": False, "error": "child process exited without a result"}
    finally:
        receiver.close()
        proc.join(10)
        if proc.is_alive():
            log.warning("killing child %s (pid %s)", key, proc.pid)
            proc.kill()
            proc.join()
    if not result.get("ok"):
        log.error("%s on %s failed: %s", key, ctx.table, result.get("error"))
    return result
