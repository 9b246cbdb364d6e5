"""A canary's guards: a small TOML file, and the test of both versions' recent figures
against it.

    window = 1000          # judge each version's most recent 1,000 units (whole batches)
    min_units = 100        # judge rates once the candidate has attempted this many units
    unfilled_rate = 1.0    # candidate's unfilled rate <= production's + 1 point
    cost_per_unit = 5.0    # candidate's shipping cost per unit <= production's + 5 %
    routing_errors = 0     # candidate batches with a routing error allowed in the window
    webhook = "https://hooks.example.com/routing"   # told when a guard trips

Every key is optional; without a file (or a key) a canary still trips on the first routing
error. A guard that cannot be judged yet (too few units, no cost known on one side) holds.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .kpis import Kpis


class GuardError(Exception):
    """A guard file that cannot be used: every problem, naming its key."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


class Guards(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    window: int = Field(default=1000, ge=1, le=10_000_000)
    min_units: int = Field(default=100, ge=0, le=10_000_000)
    unfilled_rate: float | None = Field(default=None, ge=0, le=100)
    cost_per_unit: float | None = Field(default=None, ge=0, le=10_000)
    routing_errors: int = Field(default=0, ge=0, le=1_000_000)
    webhook: str | None = None

    @field_validator("webhook")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("an http:// or https:// URL")
        return value


def read_guards(path: Path) -> Guards:
    """The guard file at ``path``, validated (GuardError lists every problem)."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise GuardError([f"{path}: {getattr(error, 'strerror', None) or error}"]) from None
    try:
        return Guards.model_validate(document)
    except ValidationError as error:
        problems = []
        for detail in error.errors():
            where = ".".join(str(p) for p in detail["loc"])
            message = detail["msg"].removeprefix("Value error, ")
            if detail["type"] == "extra_forbidden":
                message = ("unknown key (the keys: window, min_units, unfilled_rate, "
                           "cost_per_unit, routing_errors, webhook)")
            problems.append(f"{path}: {where + ': ' if where else ''}{message}")
        raise GuardError(problems) from None


@dataclass(frozen=True)
class Window:
    """A version's most recent figures: added up over its newest batches until they reach
    the guards' window of units."""

    kpis: Kpis
    batches: int


def tripped(guards: Guards, production: Window, candidate: Window) -> list[str]:
    """Why the candidate must stop (empty when every guard holds)."""
    reasons = []
    errors = candidate.kpis.errors
    if errors > guards.routing_errors:
        reasons.append(f"routing_errors: {errors} failed routing"
                       f"{'s' if errors != 1 else ''} in the candidate's last "
                       f"{candidate.batches} batch{'es' if candidate.batches != 1 else ''} "
                       f"(at most {guards.routing_errors})")
    if candidate.kpis.attempted_units < max(1, guards.min_units) or \
            not production.kpis.attempted_units:
        return reasons
    ours, theirs = candidate.kpis, production.kpis
    if guards.unfilled_rate is not None:
        limit = theirs.unfilled_rate + guards.unfilled_rate
        if ours.unfilled_rate > limit + 1e-9:
            reasons.append(f"unfilled_rate: the candidate left {ours.unfilled_rate:.2f}% of "
                           f"its last {_units(ours.attempted_units)} units unfilled, above "
                           f"production's {theirs.unfilled_rate:.2f}% + "
                           f"{guards.unfilled_rate:g} point"
                           f"{'s' if guards.unfilled_rate != 1 else ''}")
    if guards.cost_per_unit is not None and ours.cost_per_unit is not None and \
            theirs.cost_per_unit is not None:
        limit = theirs.cost_per_unit * (1 + guards.cost_per_unit / 100)
        if ours.cost_per_unit > limit + 1e-9:
            reasons.append(f"cost_per_unit: the candidate's shipping cost per unit "
                           f"{ours.cost_per_unit:.2f} is above production's "
                           f"{theirs.cost_per_unit:.2f} + {guards.cost_per_unit:g}%")
    return reasons


def _units(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"
