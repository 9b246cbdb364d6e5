"""The ops console: read-only HTML pages over the run store and the live state, served by the
same process as the API. Server-rendered (Jinja2, autoescaped), one bundled stylesheet, charts
and the shipment map drawn as inline SVG from coordinates: no scripts, no CDN, no map tiles.

Pages: the batches (filter by group and date), one batch (figures per routing and rule,
unfilled reasons, orders per facility, split rate, mean distance, a map of shipments), one
order (where its items went, the rules tried replayed against the live state, why facilities
were not chosen), and the rule files a batch ran, highlighted.
"""

from __future__ import annotations

import html
import math
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from importlib import resources

from typing import Annotated

from fastapi import FastAPI, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.exceptions import HTTPException

from ..interpreter import run_plan

_PAGES = Environment(loader=PackageLoader("routing_dsl.service", "templates"),
                     autoescape=select_autoescape(["html"]))
_PAGES.filters["number"] = lambda value: f"{value:g}"
_MAP_LINES = 1500  # a map with more shipments than this draws the first ones
# Ids and filters: any text but NUL (no database stores it); dates as the form sends them.
_NO_NUL = r"^[^\x00]*$"
Id = Annotated[str, Path(pattern=_NO_NUL)]
Day = Annotated[str, Query(pattern=r"^(\d{4}-\d{2}-\d{2})?$",
                           description="A date, YYYY-MM-DD, or empty for none.")]


def mount_console(app: FastAPI, state, store) -> None:
    """Add the console's pages to ``app`` (outside the OpenAPI document: they are HTML)."""

    def page(name: str, **values) -> HTMLResponse:
        loaded = state.loaded_at.strftime("%Y-%m-%d %H:%M UTC") if state.loaded_at else "—"
        return HTMLResponse(_PAGES.get_template(name).render(
            live=f"live state loaded {loaded}", duration=_duration, **values))

    def batch_or_404(batch_id: str) -> dict:
        detail = store.batch_detail(batch_id) if store is not None else None
        if detail is None:
            raise HTTPException(404, f"no batch {batch_id!r}")
        return detail

    @app.get("/console/static/console.css", include_in_schema=False)
    def stylesheet() -> Response:
        text = resources.files("routing_dsl.service").joinpath("static/console.css").read_text()
        return Response(text, media_type="text/css")

    @app.get("/console", include_in_schema=False, response_class=HTMLResponse)
    def batches(request: Request, group: Annotated[str, Query(pattern=_NO_NUL)] = "",
                since: Day = "", until: Day = ""):
        start, end = _day(since, "since"), _day(until, "until")
        found = [] if store is None else store.batches(
            200, group=group or None, since=start, until=_day_after(end))
        groups = sorted({g.name for plan in state.plans for g in plan.groups})
        return page("batches.html", batches=found, groups=groups, group=group,
                    since=since if start else "", until=until if end else "", store=store)

    @app.get("/console/batches/{batch_id}", include_in_schema=False,
             response_class=HTMLResponse)
    def batch(batch_id: Id):
        detail = batch_or_404(batch_id)
        places = _places(state.snapshot)
        return page("batch.html", b=detail["batch"], figures=_figures(detail),
                    chart=_bar_chart(detail["allocations"]),
                    map=_shipment_map(detail["allocations"], places))

    @app.get("/console/batches/{batch_id}/rules", include_in_schema=False,
             response_class=HTMLResponse)
    def rules(batch_id: Id):
        detail = batch_or_404(batch_id)
        plan = detail["plan"]
        text = plan["source_text"]
        if text is None:  # compiled from a plan file: show the plan
            highlighted = html.escape(plan["plan_json"])
        else:
            highlighted = _highlight(text, plan["source_name"])
        return page("rules.html", b=detail["batch"], source_name=plan["source_name"],
                    highlighted=highlighted)

    @app.get("/console/orders/{order_id}", include_in_schema=False,
             response_class=HTMLResponse)
    def order(order_id: Id):
        history = store.history(order=order_id) if store is not None else []
        return page("order.html", order=order_id, history=history,
                    explanations=_replay(state, order_id))


def _day(text: str, name: str) -> datetime | None:
    """The start of a filter's day (UTC); None when the filter is empty."""
    if not text:
        return None
    try:
        return datetime.combine(date.fromisoformat(text), datetime.min.time(), tzinfo=UTC)
    except ValueError:
        raise HTTPException(422, f"{name}: {text!r} is not a date") from None


def _day_after(day: datetime | None) -> datetime | None:
    """The end of ``day`` (exclusive); None, no bound, after the last day a date can be."""
    if day is None or day.date() == date.max:
        return None
    return day + timedelta(days=1)


def _duration(record) -> str:
    if record.finished is None:
        return "—"
    seconds = (record.finished - record.started).total_seconds()
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def _figures(detail: dict) -> dict:
    allocations, unfillable = detail["allocations"], detail["unfillable"]
    per_rule: dict[tuple, dict] = {}
    for a in allocations:
        entry = per_rule.setdefault((a["routing"], a["rule"]), {"allocations": 0, "units": set()})
        entry["allocations"] += 1
        entry["units"].add((a["order_id"], a["ship_group"]))
    shipments = defaultdict(set)
    for a in allocations:
        shipments[(a["order_id"], a["ship_group"])].add(a["new_ship_group"])
    split = sum(1 for groups in shipments.values() if len(groups) > 1)
    units = {a["distance_unit"] for a in allocations if a["distance"] is not None}
    distances = [a["distance"] for a in allocations if a["distance"] is not None]
    mean = "—"
    if distances and len(units) == 1:
        mean = f"{sum(distances) / len(distances):.1f} {units.pop()}"
    reasons = Counter((u["routing"], u["rule"], u["action"].replace("_", " "))
                      for u in unfillable)
    costs = [a["shipping_cost"] for a in allocations if a.get("shipping_cost") is not None]
    orders = list(dict.fromkeys([a["order_id"] for a in allocations]
                                + [u["order_id"] for u in unfillable]))
    return {
        "allocations": len(allocations), "orders": len({a["order_id"] for a in allocations}),
        "split_rate": f"{split / len(shipments):.0%}" if shipments else "—",
        "mean_distance": mean, "unfilled": len(unfillable),
        "shipping_cost": f"{sum(costs):,.2f}" if costs else "—",
        "per_rule": [{"routing": r, "rule": rule, "allocations": e["allocations"],
                      "units": len(e["units"])} for (r, rule), e in per_rule.items()],
        "reasons": [{"routing": r, "rule": rule, "action": action, "count": n}
                    for (r, rule, action), n in reasons.most_common()],
        "order_ids": orders[:100], "more_orders": max(0, len(orders) - 100),
    }


def _bar_chart(allocations: list[dict], top: int = 15) -> str:
    """Orders per facility, the busiest ``top``, as horizontal SVG bars."""
    per_facility = Counter()
    for facility, _ in {(a["facility"], a["order_id"]) for a in allocations}:
        per_facility[facility] += 1
    rows = sorted(per_facility.items(), key=lambda fn: (-fn[1], fn[0]))[:top]
    if not rows:
        return '<p class="muted">No allocations.</p>'
    width, bar, gap, label = 460, 18, 6, 130
    most = rows[0][1]
    height = len(rows) * (bar + gap)
    parts = [f'<svg id="facility-chart" role="img" aria-label="Orders per facility" '
             f'width="{width}" height="{height}" font-size="12">']
    for k, (facility, count) in enumerate(rows):
        y = k * (bar + gap)
        length = max(2, (width - label - 40) * count / most)
        parts.append(f'<text x="0" y="{y + 13}">{html.escape(facility)}</text>'
                     f'<rect x="{label}" y="{y}" width="{length:.1f}" height="{bar}" '
                     f'fill="#0969da"><title>{html.escape(facility)}: {count}</title></rect>'
                     f'<text x="{label + length + 4:.1f}" y="{y + 13}">{count}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _places(snapshot) -> dict:
    """Coordinates the map can use: facilities by id, ship groups by (order, ship group)."""
    if snapshot is None:
        return {"facilities": {}, "ship_to": {}}
    return {
        "facilities": {f.id: (f.lat, f.lon) for f in snapshot.facilities
                       if f.lat is not None and f.lon is not None},
        "ship_to": {(o.id, g.id): (g.ship_to.lat, g.ship_to.lon) for o in snapshot.orders
                    for g in o.ship_groups if g.ship_to and g.ship_to.lat is not None
                    and g.ship_to.lon is not None},
    }


def _shipment_map(allocations: list[dict], places: dict) -> str:
    """Each shipment as a line from its facility to its destination (facilities as squares,
    destinations as dots), projected from latitude and longitude onto the SVG."""
    lines, seen = [], set()
    for a in allocations:
        key = (a["facility"], a["order_id"], a["ship_group"])
        origin = places["facilities"].get(a["facility"])
        target = places["ship_to"].get((a["order_id"], a["ship_group"]))
        if key in seen or origin is None or target is None:
            continue
        seen.add(key)
        lines.append((a["facility"], origin, target))
        if len(lines) >= _MAP_LINES:
            break
    if not lines:
        return ('<p class="muted">No shipment has coordinates at both ends in the live '
                'state.</p>')
    points = [p for _, origin, target in lines for p in (origin, target)]
    lats, lons = [p[0] for p in points], [p[1] for p in points]
    squeeze = math.cos(math.radians((min(lats) + max(lats)) / 2))
    width, height, pad = 900, 460, 20
    span_x = max((max(lons) - min(lons)) * squeeze, 1e-6)
    span_y = max(max(lats) - min(lats), 1e-6)
    scale = min((width - 2 * pad) / span_x, (height - 2 * pad) / span_y)

    def xy(point):
        return (pad + (point[1] - min(lons)) * squeeze * scale,
                height - pad - (point[0] - min(lats)) * scale)
    parts = [f'<svg id="shipment-map" role="img" aria-label="Shipments" width="{width}" '
             f'height="{height}">']
    for _, origin, target in lines:
        (x1, y1), (x2, y2) = xy(origin), xy(target)
        parts.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
                     'stroke="#0969da" stroke-opacity="0.35"/>')
    for _, _, target in lines:
        x, y = xy(target)
        parts.append(f'<circle class="destination" cx="{x:.1f}" cy="{y:.1f}" r="2.5" '
                     'fill="#1a7f37"/>')
    for facility in sorted({(f, origin) for f, origin, _ in lines}):
        x, y = xy(facility[1])
        parts.append(f'<rect class="facility" x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" '
                     f'height="8" fill="#cf222e"><title>{html.escape(facility[0])}</title>'
                     '</rect>')
    parts.append("</svg>")
    return "".join(parts)


def _highlight(text: str, name: str) -> str:
    """The rule file as HTML, its tokens classed as the editor colours them, with line
    numbers."""
    from ..checker import Workspace
    from ..lsp.features import semantic_tokens
    result = Workspace().check_text(text, name=name or "rules.route")
    out, position = [], 0
    for start, length, kind in semantic_tokens(result):
        if start < position:
            continue
        out.append(html.escape(text[position:start]))
        out.append(f'<span class="t-{kind}">{html.escape(text[start:start + length])}</span>')
        position = start + length
    out.append(html.escape(text[position:]))
    lines = "".join(out).split("\n")
    return "\n".join(f'<span class="ln">{k}</span>{line}' for k, line in enumerate(lines, 1))


def _replay(state, order_id: str) -> list[dict] | None:
    """The order's explanation against the live state as loaded (what a batch run first
    after the load decided), or None when the order is not there."""
    snapshot = state.snapshot
    order = next((o for o in snapshot.orders if o.id == order_id), None) if snapshot else None
    if order is None:
        return None
    single = state.order_snapshot(order, taken=False)
    explanations = []
    for plan in state.plans:
        explanations += run_plan(plan, single, explain=True, explain_orders={order_id},
                                 prepared=state.prepared(plan))["explanations"]
    return explanations
