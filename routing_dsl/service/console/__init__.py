"""The ops console: read-only HTML pages over the run store and the live state, served by the
same process as the API. Server-rendered (Jinja2, autoescaped), one bundled stylesheet,
charts and the shipment map drawn as inline SVG (`charts`): no scripts, no CDN, no map tiles.

Pages:
- the dashboard (``/console``): a period's batches by status, units routed, fill and split
  rates, shipping cost per unit, mean distance, late and unfilled items, units parked per
  queue, as figures and charts over time (from the run store's hourly rollups); failed
  batches and the scheduler's health first;
- the batches (``/console/batches``), one batch (figures per routing and rule, unfilled
  reasons, orders per facility, the shipment map), its rule files, and two batches compared;
- orders found by id prefix, ship group, product or facility (``/console/orders``), and one
  order: where it waits now, its decisions and moves, the rules tried replayed (`live`);
- the queues: what waits, how long, which routing takes it next (``/console/queues``);
- stock: per facility or product, stock, reserved, available, daily count against limit;
- the rollout (``/console/rollout``): a candidate version beside production, shadow or
  canary, where it stands and both versions' figures over time (`console.rollout`).

Every query it runs is paged and served by an index (`ops.queries`); every parameter is
validated (422, never 500).
"""

from __future__ import annotations

import html
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from typing import Annotated

from fastapi import FastAPI, Path, Query
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.exceptions import HTTPException

from ...runtime import run_plan
from ...ops import queries
from . import charts, live

_PAGES = Environment(loader=PackageLoader("routing_dsl.service", "templates"),
                     autoescape=select_autoescape(["html"]))
_PAGES.filters["number"] = lambda value: f"{value:g}"
_PAGES.filters["units"] = lambda value: f"{value:,.0f}" if float(value).is_integer() \
    else f"{value:,.2f}"
PAGE = 50
# Ids and filters: any text but NUL (no database stores it), of a sane length; dates as the
# form sends them.
_NO_NUL = r"^[^\x00]*$"
Id = Annotated[str, Path(pattern=_NO_NUL, max_length=1000)]
Text = Annotated[str, Query(pattern=_NO_NUL, max_length=200)]
Day = Annotated[str, Query(pattern=r"^(\d{4}-\d{2}-\d{2})?$",
                           description="A date, YYYY-MM-DD, or empty for none.")]
# The last 24 hours by hour, or today and the days before it by day
PERIODS = {"24h": timedelta(hours=23), "7d": timedelta(days=6), "30d": timedelta(days=29),
           "90d": timedelta(days=89)}
Period = Annotated[str, Query(pattern=r"^(24h|7d|30d|90d)$")]
SearchBy = Annotated[str, Query(pattern=r"^(order|ship_group|product|facility)$")]
Status = Annotated[str, Query(pattern=r"^(|running|succeeded|failed|skipped)$")]
Start = Annotated[int, Query(ge=0, le=10_000_000)]


def wants_page(path: str, accept: str) -> bool:
    """Whether an error on ``path`` should be answered with a page: a console page asked for
    by a browser (HTML first in its Accept). Other clients get the problem document."""
    return path.startswith("/console") and accept.split(",", 1)[0].strip().startswith(
        ("text/html", "application/xhtml+xml"))


def error_page(status: int, title: str, detail: str | None, state=None) -> HTMLResponse:
    """A console error as a page: what went wrong, in the console's frame."""
    loaded = state.loaded_at.strftime("%Y-%m-%d %H:%M UTC") if state is not None and \
        state.loaded_at else "—"
    return HTMLResponse(_PAGES.get_template("error.html").render(
        live=f"live state loaded {loaded}", status=status, title=title, detail=detail),
        status_code=status)


def mount_console(app: FastAPI, state, store, supervision=None, alerts=None) -> None:
    """Add the console's pages to ``app`` (outside the OpenAPI document: they are HTML).
    ``supervision`` is the scheduler's (its health heads the dashboard); ``alerts`` the
    alert rules' state, when the service evaluates any."""

    def page(name: str, **values) -> HTMLResponse:
        loaded = state.loaded_at.strftime("%Y-%m-%d %H:%M UTC") if state.loaded_at else "—"
        return HTMLResponse(_PAGES.get_template(name).render(
            live=f"live state loaded {loaded}", duration=_duration, store=store,
            **values))

    def batch_or_404(batch_id: str) -> dict:
        detail = store.batch_detail(batch_id) if store is not None else None
        if detail is None:
            raise HTTPException(404, f"no batch {batch_id!r}")
        return detail

    def group_names() -> list[str]:
        return sorted({g.name for plan in state.plans for g in plan.groups})

    @app.get("/console/static/console.css", include_in_schema=False)
    def stylesheet() -> Response:
        text = resources.files("routing_dsl.service").joinpath("static/console.css").read_text()
        return Response(text, media_type="text/css")

    @app.get("/console", include_in_schema=False, response_class=HTMLResponse)
    def dashboard(period: Period = "7d", group: Text = "", since: Day = "", until: Day = ""):
        now = datetime.now(UTC)
        start, end = _day(since, "since"), _day_after(_day(until, "until"))
        if start is None:
            start = (end or now) - PERIODS[period]
        end = end or now
        if start >= end:
            start = end - timedelta(hours=1)
        step, start = _steps(start, end)
        health = _health(state, store, supervision, alerts, now)
        if store is None:
            return page("dashboard.html", health=health, groups=group_names(), group=group,
                        period=period, since=since, until=until, figures=None)
        buckets = queries.dashboard(store, since=start, until=end, step_hours=step,
                                    group=group or None)
        failed = queries.failed_batches(store, since=start, until=end, group=group or None)
        return page("dashboard.html", health=health, groups=group_names(), group=group,
                    period=period, since=since, until=until, failed=failed,
                    figures=_dashboard_figures(buckets, step),
                    start=start, end=end, step=step)

    @app.get("/console/rollout", include_in_schema=False, response_class=HTMLResponse)
    def rollout(period: Period = "7d"):
        from ...rollout.report import SHOWN, cell
        from . import rollout as rollout_page
        end = datetime.now(UTC)
        step, start = _steps(end - PERIODS[period], end)
        return page("rollout.html", period=period, shown=SHOWN, cell=cell,
                    **rollout_page.page_values(store, start=start, end=end, step=step))

    @app.get("/console/batches", include_in_schema=False, response_class=HTMLResponse)
    def batches(group: Text = "", status: Status = "", since: Day = "", until: Day = "",
                before: Text = ""):
        start, end = _day(since, "since"), _day(until, "until")
        cursor = None
        if before:
            try:
                cursor = queries.parse_cursor(before)
            except ValueError as error:
                raise HTTPException(422, f"before: {error}") from None
        found = [] if store is None else queries.batches(
            store, group=group or None, status=status or None, since=start,
            until=_day_after(end), before=cursor, limit=PAGE + 1)
        more = len(found) > PAGE
        found = found[:PAGE]
        return page("batches.html", batches=found, groups=group_names(), group=group,
                    status=status, since=since if start else "", until=until if end else "",
                    next_cursor=found[-1].cursor if more else None, paged=bool(before))

    @app.get("/console/batches/{batch_id}", include_in_schema=False,
             response_class=HTMLResponse)
    def batch(batch_id: Id):
        detail = batch_or_404(batch_id)
        record = detail["batch"]
        previous = queries.batches(store, group=record.group, limit=1,
                                   before=(record.started, record.id))
        return page("batch.html", b=record, figures=_figures(detail),
                    optimization=_optimization(detail["optimizations"]),
                    version=queries.version_text(record.version_label, detail["plan"]["hash"]),
                    chart=charts.facility_bars(detail["allocations"]),
                    map=charts.shipment_map(detail["allocations"], _places(state.snapshot)),
                    previous=previous[0] if previous else None,
                    writeback=queries.writeback(store, batch_id=batch_id))

    @app.get("/console/batches/{batch_id}/rules", include_in_schema=False,
             response_class=HTMLResponse)
    def rules(batch_id: Id):
        detail = batch_or_404(batch_id)
        plan = detail["plan"]
        text = plan["source_text"]
        if text is None:  # compiled from a plan file: show the plan
            highlighted, imported, same = html.escape(plan["plan_json"]), [], None
        else:
            highlighted, imported, same = _rule_files(text, plan["source_name"],
                                                      plan["plan_json"])
        return page("rules.html", b=detail["batch"], source_name=plan["source_name"],
                    highlighted=highlighted, imported=imported, same=same)

    @app.get("/console/compare", include_in_schema=False, response_class=HTMLResponse)
    def compare(a: Text = "", b: Text = ""):
        if not a or not b:
            return page("compare.html", a=a, b=b, sides=None)
        left, right = batch_or_404(a), batch_or_404(b)
        return page("compare.html", a=a, b=b, sides=_comparison(store, left, right))

    @app.get("/console/orders", include_in_schema=False, response_class=HTMLResponse)
    def orders(q: Text = "", by: SearchBy = "order", after: Text = ""):
        found: list[str] = []
        more = False
        if q:
            index = live.index_of(state)
            ids = set(live.search(index, q, by, after, PAGE + 1))
            if store is not None:
                ids.update(queries.search_orders(store, q, by, after, PAGE + 1))
            found = sorted(ids)
            more = len(found) > PAGE
            found = found[:PAGE]
            summaries = queries.order_summaries(store, found) if store is not None else {}
            rows = [_order_row(order_id, index, summaries.get(order_id), state)
                    for order_id in found]
        else:
            rows = []
        return page("orders.html", q=q, by=by, rows=rows,
                    next_after=found[-1] if more else None, paged=bool(after))

    @app.get("/console/orders/{order_id}", include_in_schema=False,
             response_class=HTMLResponse)
    def order(order_id: Id):
        history = store.history(order=order_id, limit=500) if store is not None else []
        decisions = queries.order_decisions(store, order_id) if store is not None else []
        index = live.index_of(state)
        current = index.orders.get(order_id) if index is not None else None
        refused = queries.writeback(store, order=order_id)["conflicts"] \
            if store is not None else []
        if current is None and not history and not decisions and not refused:
            raise HTTPException(404, f"no order {order_id!r}: the live state does not hold "
                                     "it and routing never decided it")
        return page("order.html", order=order_id, history=history, decisions=decisions,
                    refused=refused, rejections=_rejections(store, current, order_id),
                    current=_current(state, current) if current is not None else None,
                    explanations=_replay(state, order_id))

    @app.get("/console/queues", include_in_schema=False, response_class=HTMLResponse)
    def queues():
        index = live.index_of(state)
        rows = live.queue_summary(state, index)
        return page("queues.html", rows=rows, ages=[name for name, _ in live.AGE_BUCKETS]
                    + [live.NO_DATE], now=index.snapshot.now if index else None,
                    next_slot=_next_run)

    @app.get("/console/queues/{queue}", include_in_schema=False, response_class=HTMLResponse)
    def queue(queue: Id, start: Start = 0):
        index = live.index_of(state)
        if index is None or queue not in index.facilities or \
                not index.facilities[queue].virtual:
            raise HTTPException(404, f"no queue {queue!r} in the live state")
        rows, total = live.waiting_page(state, index, queue, start, PAGE)
        return page("queue.html", queue=queue, rows=rows, total=total, start=start,
                    page_size=PAGE, now=index.snapshot.now)

    @app.get("/console/stock", include_in_schema=False, response_class=HTMLResponse)
    def stock(facility: Text = "", product: Text = "", after: Text = ""):
        index = live.index_of(state)
        if not facility and not product:
            rows = live.facility_rows(state, index, after, PAGE + 1)
            more = len(rows) > PAGE
            rows = rows[:PAGE]
            return page("stock.html", facility="", product="", facilities=rows, rows=None,
                        next_after=rows[-1]["facility"] if more else None, paged=bool(after),
                        source=None)
        if facility and index is not None and facility not in index.facilities:
            raise HTTPException(404, f"no facility {facility!r} in the live state")
        reserved, source = _reserved(state, store, facility or None, product or None)
        rows = live.stock_rows(state, index, reserved, facility=facility or None,
                               product=product or None, after=after, limit=PAGE + 1)
        more = len(rows) > PAGE
        rows = rows[:PAGE]
        key = "product" if facility else "facility"
        place = index.facilities.get(facility) if index is not None and facility else None
        return page("stock.html", facility=facility, product=product, facilities=None,
                    rows=rows, next_after=rows[-1][key] if more else None, paged=bool(after),
                    daily=live.daily(state, place) if place is not None else None,
                    source=source)


# ---- the dashboard ----

def _dashboard_figures(buckets: list[queries.Bucket], step: int) -> dict:
    """Totals and series of the period, as the dashboard shows them."""
    def total(figure: str) -> float:
        return sum(b.total(figure) for b in buckets)

    def ratio(top: float, bottom: float) -> float | None:
        return top / bottom if bottom else None
    shape = "%m-%d %H:00" if step == 1 else "%Y-%m-%d"
    labels = [b.start.strftime(shape) for b in buckets]
    statuses = ("succeeded", "failed", "skipped")
    rows = total("distance_rows")
    unit = "mi" if rows and total("distance_mi_rows") * 2 >= rows else "km"
    per_unit = 1.609344 if unit == "mi" else 1.0

    def mean_distance(b) -> float | None:
        value = ratio(b.total("distance_km"), b.total("distance_rows"))
        return None if value is None else value / per_unit
    queues = sorted({q for b in buckets for q in b.parked},
                    key=lambda q: -sum(b.parked.get(q, 0) for b in buckets))
    figures = {
        "batches": {s: int(sum(b.count(s) for b in buckets)) for s in statuses},
        "units_routed": total("units_routed"),
        "fill_rate": ratio(total("brokered_items"), total("attempted_items")),
        "split_rate": ratio(total("split_ship_groups"), total("ship_groups")),
        "cost_per_unit": ratio(total("shipping_cost"), total("costed_units")),
        "mean_distance": total("distance_km") / rows / per_unit if rows else None,
        "distance_unit": unit,
        "late_items": total("late_items"),
        "unfilled_units": total("unfilled_units"),
        "parked": [(q, sum(b.parked.get(q, 0) for b in buckets)) for q in queues],
    }
    figures["charts"] = {
        "batches": charts.bars("chart-batches", "Batches by status", labels,
                               {s: [b.count(s) for b in buckets] for s in statuses},
                               {s: f"s-{s}" for s in statuses}),
        "units": charts.bars("chart-units", "Units routed", labels,
                             {"units routed": [b.total("units_routed") for b in buckets]}),
        "rates": charts.lines("chart-rates", "Fill and split rates", labels, {
            "fill rate": [ratio(b.total("brokered_items"), b.total("attempted_items"))
                          for b in buckets],
            "split rate": [ratio(b.total("split_ship_groups"), b.total("ship_groups"))
                           for b in buckets]}, fmt=lambda v: f"{v:.0%}"),
        "cost": charts.lines("chart-cost", "Shipping cost per unit", labels, {
            "cost per unit": [ratio(b.total("shipping_cost"), b.total("costed_units"))
                              for b in buckets]}),
        "distance": charts.lines("chart-distance", f"Mean distance ({unit})", labels, {
            f"mean distance ({unit})": [mean_distance(b) for b in buckets]},
            fmt=lambda v: f"{v:,.0f}"),
        "late": charts.bars("chart-late", "Late and unfilled", labels, {
            "late items": [b.total("late_items") for b in buckets],
            "unfilled units": [b.total("unfilled_units") for b in buckets]}),
        "parked": charts.lines("chart-parked", "Units parked per queue", labels, {
            q: [b.parked.get(q, 0.0) for b in buckets] for q in queues[:charts.SERIES]},
            fmt=lambda v: f"{v:,.0f}") if queues else "",
    }
    return figures


def _steps(start: datetime, end: datetime) -> tuple[int, datetime]:
    """Hours per bucket for a period (by hour up to two days, by day up to 93, else by
    week), and its start moved back to a bucket's start (an hour, midnight UTC, a
    Monday)."""
    span = end - start
    start = start.replace(minute=0, second=0, microsecond=0)
    if span <= timedelta(days=2):
        return 1, start
    start = start.replace(hour=0)
    if span <= timedelta(days=93):
        return 24, start
    return 168, start - timedelta(days=start.weekday())


def _health(state, store, supervision, alerts, now: datetime) -> dict:
    """The scheduler's health as the dashboard heads it: what is failing, the loop, and per
    scheduled group its next slot and how many slots it is late."""
    from ...ops.scheduler import slots_missed
    groups = []
    for plan in state.plans:
        for group in plan.groups:
            if not group.cron:
                continue
            last = queries.last_scheduled(store, group.name) if store is not None else None
            groups.append({"name": group.name, "paused": group.paused, "last": last,
                           "next": None if group.paused else _next_run(group, now),
                           "late": 0 if group.paused else slots_missed(group, last, now)})
    return {"problems": supervision.problems() if supervision is not None else [],
            "running": supervision.running if supervision is not None else False,
            "last_success": supervision.last_success if supervision is not None else None,
            "supervised": supervision is not None, "groups": groups,
            "alerts": alerts.firing() if alerts is not None else []}


def _next_run(group, now: datetime | None = None) -> datetime | None:
    from ...ops.scheduler import group_zone, next_slot
    if not group.cron or group.paused:
        return None
    return next_slot(group.cron, group_zone(group), now or datetime.now(UTC)).astimezone(UTC)


# ---- batches ----

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
        "units": sum(a["quantity"] for a in allocations),
        "split_rate": f"{split / len(shipments):.0%}" if shipments else "—",
        "split_share": split / len(shipments) if shipments else None,
        "mean_distance": mean, "unfilled": len(unfillable),
        "unfilled_units": sum(u["quantity"] for u in unfillable),
        "shipping_cost": f"{sum(costs):,.2f}" if costs else "—",
        "per_rule": [{"routing": r, "rule": rule, "allocations": e["allocations"],
                      "units": len(e["units"])} for (r, rule), e in per_rule.items()],
        "reasons": [{"routing": r, "rule": rule, "action": action, "count": n}
                    for (r, rule, action), n in reasons.most_common()],
        "order_ids": orders[:100], "more_orders": max(0, len(orders) - 100),
    }


def _optimization(rows: list[dict]) -> list[dict]:
    """Each optimised routing run of a batch as the batch page shows it: what the rules cost
    against the optimum, the lower bound and gap, both sides' splits, late and unfilled
    units, and the rules that cost most (the first ten)."""
    def money(value) -> str:
        return "—" if value is None else f"{value:,.2f}"
    shown = []
    for row in rows:
        sides = [{"side": name, "cost": money(row[key]["cost"]),
                  "packages": row[key]["packages"], "split_orders": row[key]["split_orders"],
                  "late_units": row[key]["late_units"],
                  "unfilled_units": row[key]["unfilled_units"]}
                 for name, key in (("Rules", "rules"), ("Optimum", "optimized"))]
        shown.append({
            "routing": row["routing"], "mode": row["mode"], "status": row["status"],
            "windows": row["windows"], "rules_cost": money(row["rules_cost"]),
            "optimized_cost": money(row["optimized_cost"]), "saving": money(row["saving"]),
            "saving_share": f"{row['saving'] / row['rules_cost']:.1%}"
            if row["rules_cost"] > 0 else "—",
            "lower_bound": money(row["lower_bound"]),
            "gap": "—" if row["gap"] is None else f"{row['gap']:.2%}",
            "sides": sides,
            "rule_costs": [{**r, "extra_cost": money(r["extra_cost"])}
                           for r in row["rule_costs"][:10]],
            "more_rules": max(0, len(row["rule_costs"]) - 10)})
    return shown


def _comparison(store, left: dict, right: dict) -> dict:
    """Two batches side by side: their figures, allocations per rule and orders per
    facility; and, when both ran on the same snapshot (two versions of the rules, or a
    shadow run), every unit they decided differently."""
    sides = [left, right]
    figures = [_figures(d) for d in sides]
    rules = sorted({(r["routing"], r["rule"]) for f in figures for r in f["per_rule"]})
    per_rule = [{"routing": routing, "rule": rule, "counts": [
        next((r["allocations"] for r in f["per_rule"]
              if (r["routing"], r["rule"]) == (routing, rule)), 0) for f in figures]}
        for routing, rule in rules]
    per_facility = [Counter(f for f, _ in {(a["facility"], a["order_id"])
                                           for a in d["allocations"]}) for d in sides]
    facilities = sorted(set(per_facility[0]) | set(per_facility[1]),
                        key=lambda f: (-max(per_facility[0][f], per_facility[1][f]), f))[:20]
    hashes = queries.batch_hashes(store, [d["batch"].id for d in sides])
    same_snapshot = hashes[0][1] == hashes[1][1] and bool(hashes[0][1])
    changed = []
    if same_snapshot:
        where = [defaultdict(dict) for _ in sides]
        for k, d in enumerate(sides):
            for a in d["allocations"]:
                key = (a["order_id"], a["ship_group"], a["item"])
                where[k][key][a["facility"]] = where[k][key].get(a["facility"], 0) + \
                    a["quantity"]
            for u in d["unfillable"]:
                key = (u["order_id"], u["ship_group"], u["item"])
                where[k][key].setdefault(f"({u['action'].replace('_', ' ')} {u['queue']})", 0)
        for key in sorted(set(where[0]) | set(where[1])):
            if where[0].get(key) != where[1].get(key):
                changed.append({"order": key[0], "ship_group": key[1], "item": key[2],
                                "sides": [_placed(where[k].get(key)) for k in range(2)]})
    return {"batches": [d["batch"] for d in sides], "figures": figures, "per_rule": per_rule,
            "facilities": [{"facility": f, "counts": [c[f] for c in per_facility]}
                           for f in facilities],
            "plans": [h[0] for h in hashes], "same_snapshot": same_snapshot,
            "changed": changed[:200], "more_changed": max(0, len(changed) - 200)}


def _placed(where: dict | None) -> str:
    if not where:
        return "not routed"
    return ", ".join(f"{place} ×{quantity:g}" if quantity else place
                     for place, quantity in sorted(where.items()))


def _places(snapshot) -> dict:
    """Coordinates the map can use: facilities by id, ship groups by (order, ship group)."""
    if snapshot is None:
        return {"facilities": {}, "ship_to": {}}
    return {
        "facilities": {f.id: (f.lat, f.lon) for f in snapshot.facilities
                       if f.lat is not None and f.lon is not None and not f.virtual},
        "ship_to": {(o.id, g.id): (g.ship_to.lat, g.ship_to.lon) for o in snapshot.orders
                    for g in o.ship_groups if g.ship_to and g.ship_to.lat is not None
                    and g.ship_to.lon is not None},
    }


def _rule_files(text: str, name: str, plan_json: str) -> tuple[str, list[dict], bool | None]:
    """The batch's rule file (as recorded) highlighted; the files it imports (the project's
    and the stdlib's), read from disk now, each highlighted; and whether, read now, they
    compile to the plan the batch ran (None when the file cannot be compiled here)."""
    from pathlib import Path

    from ...checker import Workspace
    from ...compiler import compile_program
    from ...loader import stdlib_dir
    workspace = Workspace()
    path = Path(name) if name else None
    try:
        result = workspace.check_text(text, name=name or "rules.route", path=path)
    except (OSError, ValueError):
        result = Workspace().check_text(text, name=name or "rules.route")
    library = stdlib_dir().resolve()
    imported = []
    for module in workspace.modules():
        if module is result:
            continue
        where = module.parsed.path
        standard = where is not None and where.resolve().is_relative_to(library)
        shown = "std." + ".".join(where.resolve().relative_to(library).with_suffix("").parts) \
            if standard else module.parsed.source.name
        imported.append({"name": shown, "stdlib": standard,
                         "highlighted": _highlight(module.parsed.source.text,
                                                   module.parsed.source.name, module)})
    imported.sort(key=lambda m: (m["stdlib"], m["name"]))
    same = None
    if not result.has_errors:
        try:
            same = compile_program(result.program).to_json() == plan_json
        except Exception:  # noqa: BLE001 - a file that no longer compiles: unknown
            same = None
    return _highlight(text, name, result), imported, same


def _highlight(text: str, name: str, result=None) -> str:
    """The rule file as HTML, its tokens classed as the editor colours them, with line
    numbers (``result``: its check, when done already)."""
    from ...checker import Workspace
    from ...lsp.features import semantic_tokens
    if result is None:
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


# ---- orders ----

def _order_row(order_id: str, index, summary: dict | None, state) -> dict:
    """One search result: where the order is in the live state now, and its last move."""
    order = index.orders.get(order_id) if index is not None else None
    waiting = []
    if order is not None:
        for group in order.ship_groups:
            facility = index.facilities.get(group.facility)
            waiting.append(f"{group.id} at {group.facility}"
                           + (" (queue)" if facility is not None and facility.virtual else ""))
    return {"order": order_id, "live": order is not None, "where": waiting,
            "store": order.product_store if order is not None else None,
            "summary": summary}


def _current(state, order) -> dict:
    """The order as the live state holds it: each ship group, where it is, and its items
    with what is still open (less what decisions took since the load) and the facilities
    that rejected them."""
    index = live.index_of(state)
    groups = []
    pending = state.pending(orders={order.id}).items
    for group in order.ship_groups:
        facility = index.facilities.get(group.facility) if index is not None else None
        items = []
        for item in group.items:
            effect = pending.get((order.id, group.id, item.id))
            taken = effect.allocated if effect is not None else 0.0
            items.append({"id": item.id, "product": item.product, "status": item.status,
                          "quantity": item.quantity, "cancelled": item.cancel_quantity,
                          "taken": taken,
                          "open": max(0.0, item.quantity - item.cancel_quantity - taken),
                          "rejected_by": list(item.excluded_facilities),
                          "auto_cancel": item.auto_cancel_date})
        groups.append({"id": group.id, "facility": group.facility,
                       "queue": facility is not None and facility.virtual,
                       "method": group.shipment_method, "items": items})
    return {"status": order.status, "store": order.product_store, "date": order.order_date,
            "channel": order.sales_channel, "groups": groups}


def _rejections(store, order, order_id: str) -> list[dict]:
    """The order's rejection history, oldest first: those the source holds on its items and
    those recorded here (POST /v1/rejections, `routing reject`), each once."""
    from ...ops import rejections
    found: dict[tuple, dict] = {}
    if order is not None:
        for group in order.ship_groups:
            for item in group.items:
                for r in item.rejections:
                    found[(item.id, r.facility, r.at)] = {
                        "item": item.id, "ship_group": group.id, "facility": r.facility,
                        "at": r.at, "reason": r.reason, "quantity": None, "recorded": False}
    if store is not None:
        for r in rejections.history(store, order_id):
            found[(r.item, r.facility, r.at)] = {
                "item": r.item, "ship_group": r.ship_group, "facility": r.facility, "at": r.at,
                "reason": r.reason, "quantity": r.quantity, "recorded": True}
    return sorted(found.values(), key=lambda r: (r["at"], r["item"], r["facility"]))


def _replay(state, order_id: str) -> list[dict] | None:
    """The order's explanation against the live state as loaded (what a batch run first
    after the load decided), or None when the order is not there."""
    index = live.index_of(state)
    order = index.orders.get(order_id) if index is not None else None
    if order is None:
        return None
    single = state.order_snapshot(order, taken=False)
    explanations = []
    for plan in state.plans:
        explanations += run_plan(plan, single, explain=True, explain_orders={order_id},
                                 prepared=state.prepared(plan))["explanations"]
    return explanations


def _reserved(state, store, facility: str | None, product: str | None
              ) -> tuple[dict, str]:
    """Reserved units per (facility, product), and where the figure comes from: the run
    store's reservation ledger (the lines the loaded source does not reflect yet), or
    without a run store nothing."""
    if store is None:
        return {}, "live state"
    return ({key: quantity for key, quantity in state.pending().taken.items()
             if facility in (None, key[0]) and product in (None, key[1])}, "ledger")
