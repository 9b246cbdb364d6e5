"""Compiler: checked program -> executable plan (:mod:`routing_dsl.plan`).

It drops what does not run (draft and archived routings and rules), fixes execution order and
keeps a source reference on every step. Callers compile only programs the checker passed
without errors (the CLI refuses the others).
"""

from __future__ import annotations

from .checked import CheckedCondition, CheckedProgram, CheckedRule, CheckedSortKey, Where
from .plan import (Actions, InventoryCondition, InventorySort, OrderCondition, OrderSort, Plan,
                   PlanGroup, PlanOptimize, PlanRouting, PlanRule, SourceRef)


def source_ref(where: Where | None) -> SourceRef | None:
    if where is None:
        return None
    position = where.source.position(where.span.start)
    return SourceRef(file=where.source.name, line=position.line, column=position.column)


def _order_condition(condition: CheckedCondition) -> OrderCondition:
    number = int(condition.number) if condition.number is not None else None
    counted = condition.field == "rejections"  # a count, not a day offset
    return OrderCondition(field=condition.field, op=condition.op, ids=list(condition.ids),
                          days=None if counted else number, count=number if counted else None,
                          source=source_ref(condition.where))


def _inventory_condition(condition: CheckedCondition) -> InventoryCondition:
    return InventoryCondition(field=condition.field, op=condition.op, ids=list(condition.ids),
                              number=condition.number, source=source_ref(condition.where))


def _sort(key: CheckedSortKey, model):
    return model(field=key.field, descending=key.descending, nulls_first=key.nulls_first,
                 source=source_ref(key.where))


def _file_unit(program: CheckedProgram) -> str:
    """The distance unit a rule without distance conditions reports distances in: the one the
    file uses elsewhere (its first distance condition), else miles."""
    for group in program.groups:
        for routing in group.routings:
            for rule in routing.rules:
                if rule.distance_unit:
                    return rule.distance_unit
    return "mi"


def _rule(rule: CheckedRule, file_unit: str) -> PlanRule:
    return PlanRule(
        name=rule.name, assign=rule.assign,
        conditions=[_inventory_condition(c) for c in rule.conditions],
        sorts=[_sort(k, InventorySort) for k in rule.sorts],
        distance_unit=rule.distance_unit or file_unit,
        keep_item_groups_together=rule.keep_item_groups_together,
        ignore_facility_order_limit=rule.ignore_facility_order_limit,
        only_if_all_items_available=rule.only_if_all_items_available,
        shipment_threshold=rule.shipment_threshold,
        split_cost=rule.split_cost, split_cost_unit=rule.split_cost_unit,
        max_facilities=rule.max_facilities,
        actions=Actions(move_to_queue=rule.move_to_queue, auto_cancel_days=rule.auto_cancel_days,
                        clear_auto_cancel=rule.clear_auto_cancel),
        active_from=rule.active_from, active_until=rule.active_until,
        source=source_ref(rule.where))


def compile_program(program: CheckedProgram) -> Plan:
    file_unit = _file_unit(program)
    groups = []
    for group in program.groups:
        routings = []
        for routing in group.routings:
            if routing.status != "active":
                continue
            rules = [_rule(r, file_unit) for r in routing.rules if r.status == "active"]
            routings.append(PlanRouting(
                name=routing.name, item_mode=routing.item_mode,
                filters=[_order_condition(c) for c in routing.filters],
                sorts=[_sort(k, OrderSort) for k in routing.sorts],
                rules=rules, active_from=routing.active_from,
                active_until=routing.active_until, source=source_ref(routing.where),
                optimize=None if routing.optimize is None else PlanOptimize(
                    **dict(routing.optimize.values),
                    source=source_ref(routing.optimize.where))))
        groups.append(PlanGroup(name=group.name, product_store=group.product_store,
                                cron=group.cron, timezone=group.timezone, paused=group.paused,
                                routings=routings, source=source_ref(group.where)))
    return Plan(source=program.source.name, version_label=program.version,
                priority_order=list(program.priority_order), groups=groups)
