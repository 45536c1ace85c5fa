"""Profiling routes for the cloud process, only when GAMEDAY_LOCAL_DEBUG=1 (bench and perf work).

CPU: yappi over every thread (POST /_gameday/debug/cpu/start, then .../cpu/stop -> top functions).
Memory: tracemalloc (POST /_gameday/debug/mem/start, then .../mem/diff -> top growth by line since
start). Off by default: tracemalloc and yappi slow the cloud down.
"""

from __future__ import annotations

import gc
import os
from typing import Any

from gameday.localcloud.process.context import ControlRoutes

ENV = "GAMEDAY_LOCAL_DEBUG"


def enabled() -> bool:
    return os.environ.get(ENV) == "1"


def add_routes(control: ControlRoutes) -> None:
    state: dict[str, Any] = {}

    def cpu_start(query: dict[str, str], _body: Any) -> tuple[int, Any]:
        import yappi

        yappi.clear_stats()
        yappi.set_clock_type(query.get("clock", "cpu"))
        yappi.start()
        return 200, {"started": True}

    def cpu_stop(query: dict[str, str], _body: Any) -> tuple[int, Any]:
        import yappi

        yappi.stop()
        stats = yappi.get_func_stats()
        stats.sort(query.get("sort", "tsub"), "desc")
        top = int(query.get("top", "40"))
        rows = [{"tsub": r.tsub, "ttot": r.ttot, "ncall": r.ncall,
                 "where": f"{r.module.split('site-packages/')[-1]}:{r.lineno} {r.name}"}
                for r in stats if query.get("filter", "") in r.module + r.name][:top]
        return 200, {"rows": rows}

    def mem_start(_query: dict[str, str], _body: Any) -> tuple[int, Any]:
        import tracemalloc

        tracemalloc.start(int(_query.get("frames", "1")))
        gc.collect()
        state["snapshot"] = tracemalloc.take_snapshot()
        return 200, {"started": True}

    def mem_diff(query: dict[str, str], _body: Any) -> tuple[int, Any]:
        import tracemalloc

        gc.collect()
        now = tracemalloc.take_snapshot()
        stats = now.compare_to(state["snapshot"], query.get("by", "lineno"))
        top = int(query.get("top", "30"))
        rows = [{"size_diff": s.size_diff, "count_diff": s.count_diff, "where": " | ".join(f"{f.filename.split('site-packages/')[-1]}:{f.lineno}" for f in s.traceback)} for s in stats[:top]]
        return 200, {"rows": rows, "traced": tracemalloc.get_traced_memory()}

    def mem_types(query: dict[str, str], _body: Any) -> tuple[int, Any]:
        """Live objects by type (top N); with ?type=NAME, what refers to a few of them."""
        import collections

        gc.collect()
        objects = gc.get_objects()
        counts = collections.Counter(type(o).__name__ for o in objects)
        out: dict[str, Any] = {"top": counts.most_common(int(query.get("top", "30")))}
        name = query.get("type")
        if name:
            found = [o for o in objects if type(o).__name__ == name][:3]
            chains = []
            for obj in found:
                chain = []
                for ref in gc.get_referrers(obj):
                    if ref is objects or ref is found:
                        continue
                    text = repr(ref)[:200] if not isinstance(ref, dict) else f"dict keys {list(ref)[:8]}"
                    chain.append(f"{type(ref).__name__}: {text}")
                chains.append(chain[:8])
            out["referrers"] = chains
        del objects
        return 200, out

    control.add("POST", "/_gameday/debug/mem/types", mem_types)
    control.add("POST", "/_gameday/debug/cpu/start", cpu_start)
    control.add("POST", "/_gameday/debug/cpu/stop", cpu_stop)
    control.add("POST", "/_gameday/debug/mem/start", mem_start)
    control.add("POST", "/_gameday/debug/mem/diff", mem_diff)
