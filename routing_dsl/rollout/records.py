"""Rollouts in the run store: which candidate runs beside production and how (shadow or
canary), where it stands, and each version's figures per batch (tables ``rollouts`` and
``rollout_kpis``, migration 0008). One shadow and one canary are in progress at a time per
store: starting one of another candidate ends (``aborted``, "replaced by ...") the one
before.

A canary's row is the truth every process follows: it is ``active`` until a guard trips it
(``tripped``), `routing rollout abort` ends it (``aborted``) or `routing rollout promote`
makes the candidate production (``promoted``). One canary is active at a time per store (a
unique index holds it); starting a canary of another candidate ends the one before. A
process that starts again with the same candidate finds its row and resumes it as it stands:
a tripped canary stays tripped for that candidate version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from ..ops import schema as t
from ..ops.store import RunStore, utc, insert_rows, plan_hash
from ..plan import Plan
from .guards import Window
from .kpis import Kpis

ENDED = ("tripped", "aborted", "promoted")


@dataclass(frozen=True)
class RolloutRecord:
    id: int
    mode: str
    status: str
    candidate_key: str
    candidate_label: str
    candidate_plans: list[dict]
    production_label: str
    production_plans: list[dict]
    share: float | None
    guards: dict | None
    started: datetime
    updated: datetime
    ended: datetime | None
    reason: str | None

    @property
    def candidate_hashes(self) -> list[str]:
        return [p["hash"] for p in self.candidate_plans]


def plan_entries(plans: Iterable[Plan]) -> list[dict]:
    """Each plan's hash (of its JSON, as batches record it), label and source file."""
    return [{"hash": plan_hash(p.to_json()), "label": p.version_label, "source": p.source}
            for p in plans]


def versions_label(entries: list[dict]) -> str:
    """The versions' labels (or short hashes) as one line."""
    return ", ".join(e["label"] or e["hash"][:12] for e in entries)


def candidate_key(entries: list[dict]) -> str:
    return hashlib.sha256("\n".join(sorted(e["hash"] for e in entries)).encode()).hexdigest()


def _record(row) -> RolloutRecord:
    return RolloutRecord(
        row["id"], row["mode"], row["status"], row["candidate_key"], row["candidate_label"],
        json.loads(row["candidate_plans"]), row["production_label"],
        json.loads(row["production_plans"]), row["share"],
        json.loads(row["guards"]) if row["guards"] else None, utc(row["started"]),
        utc(row["updated"]), row["ended"] and utc(row["ended"]), row["reason"])


def begin(store: RunStore, mode: str, production: list[Plan], candidate: list[Plan], *,
          share: float | None = None, guards: dict | None = None
          ) -> tuple[RolloutRecord, bool, str | None]:
    """The rollout of ``candidate`` in ``mode``: the one this candidate already has (resumed
    as it stands; an active canary takes the share and guards given now), else a new active
    one. Returns it, whether it was resumed and, when starting it ended another canary, that
    canary's label."""
    produced, candidates = plan_entries(production), plan_entries(candidate)
    key = candidate_key(candidates)
    r = t.rollouts.c
    for _ in range(3):  # a process starting at the same moment may insert first: read again
        now = datetime.now(UTC)
        try:
            with store.engine.begin() as connection:
                found = connection.execute(
                    sa.select(t.rollouts).where(r.candidate_key == key, r.mode == mode)
                    .order_by(r.id.desc()).limit(1)).mappings().first()
                if found is not None and mode == "shadow" and found["status"] != "active":
                    found = None  # a shadow replaced since runs again: as a new one
                if found is not None:
                    if found["status"] == "active" and mode == "canary" and (
                            found["share"] != share or _guards(found) != guards):
                        connection.execute(t.rollouts.update().where(r.id == found["id"])
                                           .values(share=share, guards=_json(guards),
                                                   updated=now))
                        found = dict(found, share=share, guards=_json(guards))
                    return _record(found), True, None
                replaced = None
                for before in connection.execute(sa.select(r.id, r.candidate_label).where(
                        r.status == "active", r.mode == mode)).all():
                    replaced = before.candidate_label
                    connection.execute(t.rollouts.update().where(r.id == before.id).values(
                        status="aborted", updated=now, ended=now,
                        reason=f"replaced by a {mode} of {versions_label(candidates)}"))
                if mode == "canary":  # its shadow, if it had one, has done its work
                    connection.execute(t.rollouts.update().where(
                        r.status == "active", r.mode == "shadow", r.candidate_key == key
                    ).values(status="aborted", updated=now, ended=now,
                             reason="followed by its canary"))
                new_id = connection.execute(t.rollouts.insert().values(
                    mode=mode, status="active", candidate_key=key,
                    candidate_label=versions_label(candidates),
                    candidate_plans=json.dumps(candidates),
                    production_label=versions_label(produced),
                    production_plans=json.dumps(produced), share=share,
                    guards=_json(guards), started=now, updated=now)).inserted_primary_key[0]
                created = connection.execute(sa.select(t.rollouts).where(
                    r.id == new_id)).mappings().one()
                return _record(created), False, replaced
        except sa.exc.IntegrityError:
            continue
    raise RuntimeError("could not start the rollout: other processes keep changing it")


def _json(value) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True)


def _guards(row) -> dict | None:
    return json.loads(row["guards"]) if row["guards"] else None


def get(store: RunStore, rollout_id: int) -> RolloutRecord | None:
    with store.reading() as connection:
        row = connection.execute(sa.select(t.rollouts).where(
            t.rollouts.c.id == rollout_id)).mappings().first()
    return _record(row) if row is not None else None


def listed(store: RunStore, *, active: bool = False, limit: int = 20) -> list[RolloutRecord]:
    """Rollouts, newest first (only the active ones, with ``active``)."""
    query = sa.select(t.rollouts).order_by(t.rollouts.c.id.desc()).limit(limit)
    if active:
        query = query.where(t.rollouts.c.status == "active")
    with store.reading() as connection:
        return [_record(row) for row in connection.execute(query).mappings()]


def current_canary(store: RunStore) -> RolloutRecord | None:
    """The active canary, else the latest one (None when there never was one)."""
    r = t.rollouts.c
    with store.reading() as connection:
        row = connection.execute(sa.select(t.rollouts).where(r.mode == "canary").order_by(
            (r.status == "active").desc(), r.id.desc()).limit(1)).mappings().first()
    return _record(row) if row is not None else None


def end(store: RunStore, rollout_id: int, status: str, reason: str) -> bool:
    """Move an active rollout to ``status`` (tripped, aborted, promoted) saying why; False
    when it was no longer active (another process ended it first)."""
    assert status in ENDED
    now = datetime.now(UTC)
    r = t.rollouts.c
    with store.engine.begin() as connection:
        return connection.execute(t.rollouts.update().where(
            r.id == rollout_id, r.status == "active").values(
            status=status, reason=reason, updated=now, ended=now)).rowcount == 1


# ---- figures ----

def kpi_row(rollout: RolloutRecord, batch_id: str, role: str, *, group: str, trigger: str,
            started: datetime, plan: tuple[str, str | None], kpis: Kpis,
            differing: int = 0, differences: list | None = None,
            error: str | None = None) -> dict:
    """One `rollout_kpis` row: ``plan`` is the version's (hash, label)."""
    return {"batch_id": batch_id, "role": role, "rollout_id": rollout.id,
            "mode": rollout.mode, "group_name": group, "trigger": trigger,
            "started": started.astimezone(UTC), "plan_hash": plan[0],
            "version_label": plan[1], **kpis.values(), "differing_units": differing,
            "differences": json.dumps(differences) if differences else None,
            "error": error}


def record(store: RunStore, rows: list[dict]) -> None:
    """Write figures rows (one transaction)."""
    if rows:
        with store.engine.begin() as connection:
            insert_rows(connection, t.rollout_kpis, rows)


PAGE = 500


def window(store: RunStore, rollout_id: int, role: str, units: int) -> Window:
    """A version's figures over its newest batches of the rollout, whole batches, until they
    hold ``units`` units attempted."""
    k = t.rollout_kpis.c
    total, batches, before = Kpis(), 0, None
    with store.reading() as connection:
        while total.attempted_units < units:
            query = sa.select(t.rollout_kpis).where(
                k.rollout_id == rollout_id, k.role == role)
            if before is not None:
                query = query.where(sa.tuple_(k.started, k.batch_id) < sa.tuple_(*before))
            rows = connection.execute(query.order_by(k.started.desc(), k.batch_id.desc())
                                      .limit(PAGE)).mappings().all()
            for row in rows:
                total.add(Kpis.of_row(row))
                batches += 1
                if total.attempted_units >= units:
                    break
            if len(rows) < PAGE:
                break
            before = (rows[-1]["started"], rows[-1]["batch_id"])
    return Window(total, batches)


@dataclass
class ShadowBatch:
    """One batch shadowed: both versions' figures and the units whose decisions differ."""

    batch_id: str
    group: str
    trigger: str
    started: datetime
    production: dict   # plan_hash, version_label, kpis (Kpis), error
    candidate: dict
    differing_units: int
    differences: list[dict]


def shadow_batches(store: RunStore, *, since: datetime | None = None,
                   until: datetime | None = None, limit: int = 50,
                   rollout_id: int | None = None) -> list[ShadowBatch]:
    """The batches shadowed (newest first), both versions' figures side by side."""
    k = t.rollout_kpis.c
    query = sa.select(t.rollout_kpis).where(k.mode == "shadow")
    if since is not None:
        query = query.where(k.started >= since)
    if until is not None:
        query = query.where(k.started < until)
    if rollout_id is not None:
        query = query.where(k.rollout_id == rollout_id)
    # two rows a batch; the newest `limit` batches' rows
    query = query.order_by(k.started.desc(), k.batch_id.desc(), k.role.desc()).limit(2 * limit)
    found: dict[str, dict] = {}
    with store.reading() as connection:
        for row in connection.execute(query).mappings():
            found.setdefault(row["batch_id"], {})[row["role"]] = dict(row)
    batches = []
    for batch_id, roles in found.items():
        if "production" not in roles or "candidate" not in roles:
            continue  # the page cut this batch's pair in two
        first, cand = roles["production"], roles["candidate"]
        batches.append(ShadowBatch(
            batch_id, first["group_name"], first["trigger"], utc(first["started"]),
            _side(first), _side(cand), cand["differing_units"],
            json.loads(cand["differences"]) if cand["differences"] else []))
    return batches[:limit]


def _side(row: dict) -> dict:
    return {"plan_hash": row["plan_hash"], "version_label": row["version_label"],
            "kpis": Kpis.of_row(row), "error": row["error"]}


def shadowed(store: RunStore, rollout_id: int) -> tuple[int, datetime | None]:
    """How many batches a shadow has measured, and when the last one started."""
    k = t.rollout_kpis.c
    with store.reading() as connection:
        count, last = connection.execute(sa.select(sa.func.count(), sa.func.max(k.started))
                                         .where(k.rollout_id == rollout_id,
                                                k.role == "candidate")).one()
    return count, last and utc(last)


def canary_batches(store: RunStore, rollout_id: int, limit: int = 200) -> list[dict]:
    """A canary's batches, newest first: each with its version's role and figures."""
    k = t.rollout_kpis.c
    query = sa.select(t.rollout_kpis).where(k.rollout_id == rollout_id).order_by(
        k.started.desc(), k.batch_id.desc()).limit(limit)
    with store.reading() as connection:
        return [{"batch_id": row["batch_id"], "role": row["role"], "group": row["group_name"],
                 "trigger": row["trigger"], "started": utc(row["started"]),
                 "version": row["version_label"] or row["plan_hash"][:12],
                 "kpis": Kpis.of_row(row), "error": row["error"]}
                for row in connection.execute(query).mappings()]


def series(store: RunStore, *, since: datetime, until: datetime,
           limit: int = 20_000) -> list[dict]:
    """Both versions' figures per batch over a period, oldest first (each row: mode, role,
    started, the figures, differing units), at most ``limit`` rows."""
    k = t.rollout_kpis.c
    query = sa.select(t.rollout_kpis).where(  # by mode too: served by ix_rollout_kpis_started
        k.mode.in_(t.ROLLOUT_MODES), k.started >= since, k.started < until).order_by(
        k.started, k.batch_id).limit(limit)
    with store.reading() as connection:
        return [{"mode": row["mode"], "role": row["role"], "started": utc(row["started"]),
                 "kpis": Kpis.of_row(row), "differing_units": row["differing_units"]}
                for row in connection.execute(query).mappings()]
