"""The console's pictures as inline SVG, drawn on the server: bar and line charts over time,
orders per facility, and the shipment map. No script, no external asset; colours come from
classes the bundled stylesheet defines (the Content-Security-Policy allows no inline style).
Every bar and point carries a <title> with its value, which a browser shows on hover and a
screen reader reads."""

from __future__ import annotations

import html
import math
from collections import Counter, defaultdict
from collections.abc import Callable

WIDTH, HEIGHT = 560, 170
LEFT, RIGHT, TOP, BOTTOM = 52, 8, 10, 24
MAP_LINES = 1500  # a map with more shipments than this draws the first ones
SERIES = 8        # line and stack colours: classes c0..c7 in console.css


def _nice(top: float) -> float:
    """A round number at or above ``top`` for the y axis."""
    if top <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(top))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= top:
            return step * power
    return 10 * power


def _frame(chart_id: str, title: str, labels: list[str], top: float,
           fmt: Callable[[float], str]) -> list[str]:
    plot_h = HEIGHT - TOP - BOTTOM
    parts = [f'<svg id="{chart_id}" class="chart" role="img" aria-label="{html.escape(title)}" '
             f'width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}">']
    for share in (0, 0.5, 1):
        y = TOP + plot_h * (1 - share)
        parts.append(f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" '
                     f'y2="{y:.1f}"/><text class="axis" x="{LEFT - 4}" y="{y + 4:.1f}" '
                     f'text-anchor="end">{html.escape(fmt(top * share))}</text>')
    if labels:
        shown = sorted({0, len(labels) // 2, len(labels) - 1})
        for k in shown:
            x = LEFT + (k + 0.5) * (WIDTH - LEFT - RIGHT) / len(labels)
            anchor = "start" if k == 0 and len(labels) > 1 else (
                "end" if k == len(labels) - 1 and len(labels) > 1 else "middle")
            if anchor == "start":
                x = LEFT
            elif anchor == "end":
                x = WIDTH - RIGHT
            parts.append(f'<text class="axis" x="{x:.1f}" y="{HEIGHT - 6}" '
                         f'text-anchor="{anchor}">{html.escape(labels[k])}</text>')
    return parts


def bars(chart_id: str, title: str, labels: list[str], stacks: dict[str, list[float]],
         classes: dict[str, str] | None = None,
         fmt: Callable[[float], str] = lambda v: f"{v:,.0f}") -> str:
    """Bars over time, one per label, each stacked from ``stacks`` (name -> values)."""
    names = list(stacks)
    classes = classes or {name: f"c{k % SERIES}" for k, name in enumerate(names)}
    totals = [sum(stacks[n][k] for n in names) for k in range(len(labels))]
    top = _nice(max(totals, default=0))
    parts = _frame(chart_id, title, labels, top, fmt)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(1, len(labels))
    width = max(1.0, slot * 0.8)
    for k, label in enumerate(labels):
        base = 0.0
        for name in names:
            value = stacks[name][k]
            if value <= 0:
                continue
            height = plot_h * value / top
            y = TOP + plot_h * (1 - (base + value) / top)
            parts.append(f'<rect class="bar {classes[name]}" x="{LEFT + k * slot + (slot - width) / 2:.1f}" '
                         f'y="{y:.1f}" width="{width:.1f}" height="{max(height, 0.5):.1f}">'
                         f'<title>{html.escape(label)}: {html.escape(fmt(value))}'
                         f'{" " + html.escape(name) if len(names) > 1 else ""}</title></rect>')
            base += value
    parts.append("</svg>")
    return "".join(parts) + _legend(names, classes)


def lines(chart_id: str, title: str, labels: list[str], series: dict[str, list[float | None]],
          fmt: Callable[[float], str] = lambda v: f"{v:,.2f}") -> str:
    """Lines over time, one per series (name -> values; None where there is nothing to
    show, which breaks the line)."""
    names = list(series)
    classes = {name: f"c{k % SERIES}" for k, name in enumerate(names)}
    values = [v for name in names for v in series[name] if v is not None]
    top = _nice(max(values, default=0))
    parts = _frame(chart_id, title, labels, top, fmt)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(1, len(labels))
    for name in names:
        runs: list[list[tuple[float, float, int]]] = [[]]
        for k, value in enumerate(series[name]):
            if value is None:
                runs.append([])
                continue
            runs[-1].append((LEFT + (k + 0.5) * slot, TOP + plot_h * (1 - value / top), k))
        for run in runs:
            if len(run) > 1:
                points = " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in run)
                parts.append(f'<polyline class="line {classes[name]}" points="{points}"/>')
            for x, y, k in run:
                parts.append(f'<circle class="point {classes[name]}" cx="{x:.1f}" cy="{y:.1f}" '
                             f'r="2.5"><title>{html.escape(labels[k])}: '
                             f'{html.escape(fmt(series[name][k]))}'
                             f'{" " + html.escape(name) if len(names) > 1 else ""}'
                             f'</title></circle>')
    parts.append("</svg>")
    return "".join(parts) + _legend(names, classes)


def _legend(names: list[str], classes: dict[str, str]) -> str:
    if len(names) < 2:
        return ""
    return '<ul class="legend">' + "".join(
        f'<li><svg width="10" height="10"><rect class="{classes[n]}" width="10" height="10"/>'
        f'</svg> {html.escape(n)}</li>' for n in names) + "</ul>"


def facility_bars(allocations: list[dict], top: int = 15, chart_id: str = "facility-chart",
                  ) -> str:
    """Orders per facility, the busiest ``top``, as horizontal bars."""
    per_facility: Counter = Counter()
    for facility, _ in {(a["facility"], a["order_id"]) for a in allocations}:
        per_facility[facility] += 1
    rows = sorted(per_facility.items(), key=lambda fn: (-fn[1], fn[0]))[:top]
    if not rows:
        return '<p class="muted">No allocations.</p>'
    width, bar, gap, label = 460, 18, 6, 130
    most = rows[0][1]
    height = len(rows) * (bar + gap)
    parts = [f'<svg id="{chart_id}" role="img" aria-label="Orders per facility" '
             f'width="{width}" height="{height}" font-size="12">']
    for k, (facility, count) in enumerate(rows):
        y = k * (bar + gap)
        length = max(2, (width - label - 40) * count / most)
        parts.append(f'<text x="0" y="{y + 13}">{html.escape(facility)}</text>'
                     f'<rect class="c0" x="{label}" y="{y}" width="{length:.1f}" '
                     f'height="{bar}"><title>{html.escape(facility)}: {count}</title></rect>'
                     f'<text x="{label + length + 4:.1f}" y="{y + 13}">{count}</text>')
    parts.append("</svg>")
    return "".join(parts)


def shipment_map(allocations: list[dict], places: dict, *, labels: int = 40,
                 cell: float = 48.0) -> str:
    """Each shipment as a line from its facility to its destination, on a base of every
    facility of the live state in view (grey squares); the facilities that ship are red
    squares, the busiest ``labels`` of them labelled; destinations are dots, and where
    several fall within ``cell`` pixels of one another, a cluster bubble says how many.
    Projected from latitude and longitude."""
    lines_, seen = [], set()
    for a in allocations:
        key = (a["facility"], a["order_id"], a["ship_group"])
        origin = places["facilities"].get(a["facility"])
        target = places["ship_to"].get((a["order_id"], a["ship_group"]))
        if key in seen or origin is None or target is None:
            continue
        seen.add(key)
        lines_.append((a["facility"], origin, target))
        if len(lines_) >= MAP_LINES:
            break
    if not lines_:
        return ('<p class="muted">No shipment has coordinates at both ends in the live '
                'state.</p>')
    points = [p for _, origin, target in lines_ for p in (origin, target)]
    lats, lons = [p[0] for p in points], [p[1] for p in points]
    south, north, west, east = min(lats), max(lats), min(lons), max(lons)
    squeeze = math.cos(math.radians((south + north) / 2))
    width, height, pad = 900, 460, 24
    span_x = max((east - west) * squeeze, 1e-6)
    span_y = max(north - south, 1e-6)
    scale = min((width - 2 * pad - 90) / span_x, (height - 2 * pad) / span_y)

    def xy(point):
        return (pad + (point[1] - west) * squeeze * scale,
                height - pad - (point[0] - south) * scale)
    parts = [f'<svg id="shipment-map" role="img" aria-label="Shipments" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}">']
    shipping = Counter(facility for facility, _, _ in lines_)
    for facility, place in sorted(places["facilities"].items()):  # the base
        if facility in shipping or not (south <= place[0] <= north and west <= place[1] <= east):
            continue
        x, y = xy(place)
        parts.append(f'<rect class="base-facility" x="{x - 2:.1f}" y="{y - 2:.1f}" width="4" '
                     f'height="4"><title>{html.escape(facility)}</title></rect>')
    for _, origin, target in lines_:
        (x1, y1), (x2, y2) = xy(origin), xy(target)
        parts.append(f'<line class="shipment" x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" '
                     f'y2="{y2:.1f}"/>')
    cells: dict[tuple[int, int], list[tuple[float, float]]] = defaultdict(list)
    for _, _, target in lines_:
        x, y = xy(target)
        parts.append(f'<circle class="destination" cx="{x:.1f}" cy="{y:.1f}" r="2"/>')
        cells[(int(x // cell), int(y // cell))].append((x, y))
    for members in cells.values():
        if len(members) < 2:
            continue
        x = sum(m[0] for m in members) / len(members)
        y = sum(m[1] for m in members) / len(members)
        radius = 5 + 2.2 * math.sqrt(len(members))
        parts.append(f'<g class="cluster"><circle cx="{x:.1f}" cy="{y:.1f}" r="{radius:.1f}">'
                     f'<title>{len(members)} destinations</title></circle>'
                     f'<text x="{x:.1f}" y="{y + 4:.1f}" text-anchor="middle">{len(members)}'
                     f'</text></g>')
    named = {f for f, _ in shipping.most_common(labels)}
    for facility, origin in sorted({(f, origin) for f, origin, _ in lines_}):
        x, y = xy(origin)
        parts.append(f'<rect class="facility" x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" '
                     f'height="8"><title>{html.escape(facility)}: {shipping[facility]} '
                     f'shipment{"" if shipping[facility] == 1 else "s"}</title></rect>')
        if facility in named:
            parts.append(f'<text class="facility-label" x="{x + 7:.1f}" y="{y + 4:.1f}">'
                         f'{html.escape(facility)}</text>')
    parts.append("</svg>")
    return "".join(parts)
