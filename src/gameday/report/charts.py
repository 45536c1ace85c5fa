"""Timeline and health charts (PNG, matplotlib Agg) for reports and summary.md.

Why numpy histograms and `stairs` instead of bars: a game day under load records 100k+ requests; binning with
numpy and drawing one filled step polygon per series keeps a chart well under half a second. Uses the
object-oriented Figure API (no pyplot), so it is safe from worker threads and leaves no global state.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gameday.lazy import lazy_module

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy")   # matplotlib (loaded when a chart is drawn) brings numpy anyway


if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _new_figure(**kwargs: Any) -> Figure:
    """A Figure with the Agg canvas; matplotlib is imported here, when a chart is first drawn."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


#: mark name -> (label, colour); drawn in this order
MARKS: tuple[tuple[str, str, str], ...] = (
    ("fault", "fault", "#d62728"),
    ("detected", "detection", "#ff7f0e"),
    ("dns_shift", "DNS shift", "#9467bd"),
    ("restore", "restore", "#1f77b4"),
    ("recovered", "recovery", "#2ca02c"),
)
OK_COLOUR = "#4caf50"
FAIL_COLOUR = "#e53935"
UNHEALTHY_FAILING_FRACTION = 0.82  # healthy needs > 18% healthy checkers (Route 53)


def _save(fig: Figure, path: str | os.PathLike[str] | None, dpi: int) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, pil_kwargs={"compress_level": 3})
    data = buf.getvalue()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(data)
    return data


def _origin(times: Iterable[float], marks: Mapping[str, float | None]) -> float:
    candidates = [t for t in times] + [t for t in marks.values() if t is not None]
    return min(candidates) if candidates else 0.0


def _draw_marks(axes: list[Any], marks: Mapping[str, float | None], t0: float, label_axis: Any) -> None:
    for key, label, colour in MARKS:
        t = marks.get(key)
        if t is None:
            continue
        x = t - t0
        for ax in axes:
            ax.axvline(x, color=colour, linestyle="--", linewidth=1.2, label=label if ax is label_axis else None)
        label_axis.annotate(label, xy=(x, 0.97), xycoords=("data", "axes fraction"), xytext=(2, 0),
                            textcoords="offset points", rotation=90, va="top", ha="left", fontsize=7,
                            color=colour, bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none",
                                                "alpha": 0.7})


def _aws_axis(ax: Any, time_scale: float) -> None:
    if time_scale and time_scale < 1.0:
        sec = ax.secondary_xaxis("top", functions=(lambda x: x / time_scale, lambda x: x * time_scale))
        sec.set_xlabel(f"AWS-equivalent seconds (time scale {time_scale:g})", fontsize=8)
        sec.tick_params(labelsize=7)


def timeline_chart(events: Iterable[Mapping[str, Any]], marks: Mapping[str, float | None] | None = None,
                   path: str | os.PathLike[str] | None = None, *, title: str = "Traffic timeline",
                   time_scale: float = 1.0, bins: int = 120, dpi: int = 90, origin: float | None = None) -> bytes:
    """Requests per second per region (one panel each), successes and failures stacked, with the scenario marks
    (fault, detection, DNS shift, restore, recovery) as labelled vertical lines. Returns the PNG bytes (and
    writes them to `path` if given). Events use the traffic contract (t_start, t_end, ok, region, ...); a request
    counts in the bin of its end time. `origin` (a time.time()) is x = 0; default: the first request."""
    marks = dict(marks or {})
    codes: dict[str, int] = {}
    rows = [(e["t_end"], bool(e["ok"]), codes.setdefault(e.get("region") or "unresolved", len(codes)))
            for e in events]
    data = np.asarray(rows, dtype=float).reshape(-1, 3)
    times, oks, regs = data[:, 0], data[:, 1].astype(bool), data[:, 2].astype(int)
    names = sorted(codes) or ["(no traffic)"]
    mark_times = [t for t in marks.values() if t is not None]
    t0 = origin if origin is not None else (float(times.min()) if times.size else _origin([], marks))
    t_last = max([t0] + ([float(times.max())] if times.size else []) + mark_times)
    span = max(t_last - t0, 1e-3)
    edges = np.linspace(0.0, span, bins + 1)
    width = edges[1] - edges[0]
    rel = times - t0

    height = 1.2 + 1.9 * len(names)
    fig = _new_figure(figsize=(10, height))
    fig.subplots_adjust(left=0.08, right=0.98, top=1 - 0.75 / height, bottom=0.85 / height, hspace=0.25)
    axes = [fig.add_subplot(len(names), 1, i + 1) for i in range(len(names))]
    for ax in axes[1:]:
        ax.sharex(axes[0])
    for ax, name in zip(axes, names, strict=True):
        sel = regs == codes.get(name, -1)
        good, _ = np.histogram(rel[sel & oks], bins=edges)
        bad, _ = np.histogram(rel[sel & ~oks], bins=edges)
        good_rate = good / width
        bad_rate = bad / width
        ax.stairs(good_rate, edges, fill=True, color=OK_COLOUR, label="ok")
        ax.stairs(good_rate + bad_rate, edges, baseline=good_rate, fill=True, color=FAIL_COLOUR, label="failed")
        ax.set_ylabel(f"{name}\nreq/s", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, axis="y", alpha=0.3)
        ax.set_xlim(0, span)
        ax.set_ylim(0, max(float((good_rate + bad_rate).max(initial=0.0)), 1.0) * 1.3)
        total, failed = int(sel.sum()), int((sel & ~oks).sum())
        ax.text(0.005, 0.95, f"{total} requests, {failed} failed", transform=ax.transAxes, ha="left", va="top",
                fontsize=7)
    _draw_marks(axes, marks, t0, axes[0])
    axes[-1].set_xlabel("measured seconds" + (" since first request" if origin is None else ""), fontsize=8)
    _aws_axis(axes[0], time_scale)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=7, frameon=False)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path, dpi)


def health_chart(observations: Iterable[Mapping[str, Any]], marks: Mapping[str, float | None] | None = None,
                 path: str | os.PathLike[str] | None = None, *, title: str = "Route 53 health observations",
                 time_scale: float = 1.0, dpi: int = 90, origin: float | None = None) -> bytes:
    """Failing fraction of health checkers over time, one line per region, with the unhealthy threshold and the
    scenario marks. An observation is ``{"t", "region", "failing", "total"}`` (or ``"failing_fraction"`` or
    ``"healthy_fraction"`` instead of the counts). `origin` (a time.time()) is x = 0; default: first observation."""
    marks = dict(marks or {})
    series: dict[str, tuple[list[float], list[float]]] = {}
    for o in observations:
        if "failing_fraction" in o:
            frac = float(o["failing_fraction"])
        elif "healthy_fraction" in o:
            frac = 1.0 - float(o["healthy_fraction"])
        else:
            total = o.get("total") or 0
            frac = float(o.get("failing", 0)) / total if total else 0.0
        ts, fs = series.setdefault(o.get("region") or "?", ([], []))
        ts.append(float(o["t"]))
        fs.append(frac)
    t0 = origin if origin is not None else _origin((t for ts, _ in series.values() for t in ts[:1]), marks)
    fig = _new_figure(figsize=(10, 3.6))
    fig.subplots_adjust(left=0.08, right=0.98, top=0.80, bottom=0.25)
    ax = fig.add_subplot(1, 1, 1)
    for name in sorted(series):
        ts, fs = series[name]
        order = np.argsort(ts)
        ax.step(np.asarray(ts)[order] - t0, np.asarray(fs)[order], where="post", label=name, linewidth=1.6)
    ax.axhline(UNHEALTHY_FAILING_FRACTION, color="grey", linestyle=":", linewidth=1,
               label="unhealthy (< 18% healthy)")
    _draw_marks([ax], marks, t0, ax)
    ax.set_ylim(-0.02, 1.05)
    ax.set_ylabel("failing checkers (fraction)", fontsize=8)
    ax.set_xlabel("measured seconds" + (" since first observation" if origin is None else ""), fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(True, alpha=0.3)
    _aws_axis(ax, time_scale)
    fig.legend(*ax.get_legend_handles_labels(), fontsize=7, loc="lower center", ncol=8, frameon=False)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path, dpi)
