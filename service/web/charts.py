"""The dashboard's charts, drawn on the server with matplotlib as SVG: they need no script
in the browser, print sharply, and read the same on screen and on paper."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import date

from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

__all__ = ["bar_chart", "lines_chart", "stacked_days_chart"]

#: Colour-blind-safe palette (Okabe and Ito), then grey for "other".
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442"]
OTHER = "#999999"
SIZE = (6.0, 2.6)


def _svg(figure: Figure, title: str) -> str:
    figure.suptitle(title, x=0.01, ha="left", fontsize=11, fontweight="bold")
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    svg = buffer.getvalue()
    return svg[svg.index("<svg") :]  # drop the XML prologue and doctype: the SVG is inlined


def _style(axes: object) -> None:
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)  # type: ignore[attr-defined]
    axes.grid(axis="y", color="#dddddd", linewidth=0.6)  # type: ignore[attr-defined]
    axes.set_axisbelow(True)  # type: ignore[attr-defined]


def _date_axis(axes: object, days: Sequence[date]) -> None:
    """Dates along x, spanning exactly the period (one point alone would span years)."""
    locator = AutoDateLocator(minticks=3, maxticks=8)
    axes.xaxis.set_major_locator(locator)  # type: ignore[attr-defined]
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[attr-defined]
    if days:
        first, last = date2num([days[0], days[-1]])
        axes.set_xlim(first - 0.6, last + 0.6)  # type: ignore[attr-defined]


def stacked_days_chart(
    title: str,
    days: Sequence[date],
    series: Mapping[str, Mapping[date, int]],
    unit: str = "tickets",
    top: int = 6,
) -> str:
    """Counts per day, stacked by category; the ``top`` largest kept, the rest as other."""
    ranked = sorted(series, key=lambda name: -sum(series[name].values()))
    shown = ranked[:top]
    rest = ranked[top:]
    figure = Figure(figsize=SIZE)
    axes = figure.subplots()
    bottom = [0] * len(days)
    layers = [(name, [series[name].get(day, 0) for day in days]) for name in shown]
    if rest:
        layers.append(("other", [sum(series[n].get(day, 0) for n in rest) for day in days]))
    for index, (name, counts) in enumerate(layers):
        colour = OTHER if name == "other" and rest else PALETTE[index % len(PALETTE)]
        axes.bar(date2num(list(days)), counts, bottom=bottom, label=name, color=colour, width=0.85)
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    _style(axes)
    _date_axis(axes, days)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel(unit)
    if layers:
        axes.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _svg(figure, title)


def lines_chart(
    title: str,
    days: Sequence[date],
    series: Mapping[str, Mapping[date, float | None]],
    percent: bool = True,
) -> str:
    """One line per series over the days; missing days are gaps."""
    figure = Figure(figsize=SIZE)
    axes = figure.subplots()
    for index, (name, values) in enumerate(series.items()):
        points = [values.get(day) for day in days]
        scaled = [float("nan") if v is None else (100 * v if percent else v) for v in points]
        axes.plot(
            date2num(list(days)),
            scaled,
            marker="o",
            markersize=3,
            label=name,
            color=PALETTE[index % 7],
        )
    _style(axes)
    _date_axis(axes, days)
    if percent:
        axes.set_ylim(0, 100)
        axes.set_ylabel("%")
    if series:
        axes.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _svg(figure, title)


def bar_chart(
    title: str,
    values: Mapping[str, float],
    limits: Mapping[str, float] | None = None,
    labels: tuple[str, str] = ("open", "capacity"),
) -> str:
    """Horizontal bars, one per name; with ``limits``, each bar over its own full length
    (load against capacity); ``labels`` name the two in the legend."""
    names = list(values)
    figure = Figure(figsize=(SIZE[0], 0.45 * max(len(names), 2) + 0.8))
    axes = figure.subplots()
    if limits:
        axes.barh(names, [limits.get(n, 0) for n in names], color="#e6e6e6", label=labels[1])
    axes.barh(names, [values[n] for n in names], color=PALETTE[0], label=labels[0])
    axes.invert_yaxis()
    _style(axes)
    axes.grid(axis="x", color="#dddddd", linewidth=0.6)
    axes.grid(axis="y", visible=False)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    if limits:
        axes.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _svg(figure, title)
