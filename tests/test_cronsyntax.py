"""The checker accepts plain schedules without croniter (`routing check` starts faster): every
schedule it accepts that way, croniter accepts, so the checker's verdict is croniter's."""

from __future__ import annotations

from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from routing_dsl.checker import _valid_cron
from routing_dsl.cronsyntax import plainly_valid


def croniter_accepts(expression: str) -> bool:
    try:
        if len(expression.split()) == 5:
            return croniter.is_valid(expression)
        return croniter.is_valid(expression, second_at_beginning=True)
    except Exception:  # noqa: BLE001 - croniter raises assorted errors on odd input
        return False


BOUNDS = {5: [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)],
          6: [(0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 7)],
          7: [(0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 7), (1969, 2100)]}


def field(lowest: int, highest: int):
    """A field around its bounds (one past each end too): `*`, `?`, N, N-M, */S, N-M/S, N/S,
    or a list of them."""
    number = st.one_of(st.integers(lowest, highest),
                       st.integers(lowest - 1, highest + 1)).map(str)
    step = st.one_of(st.integers(1, 30), st.integers(0, 61)).map(str)
    item = st.one_of(
        st.just("*"), st.just("*"), st.just("?"), number, st.tuples(number, number).map("-".join),
        step.map(lambda s: f"*/{s}"), st.tuples(number, number, step).map(
            lambda p: f"{p[0]}-{p[1]}/{p[2]}"), st.tuples(number, step).map("/".join))
    return st.lists(item, min_size=1, max_size=3).map(",".join)


# each arity's strategy is built once: hypothesis validates a strategy object the first time
# it draws from it, and rebuilding them inside flatmap paid that on every example
EXPRESSIONS = {n: st.tuples(*(field(*b) for b in bounds)) for n, bounds in BOUNDS.items()}
plain = st.sampled_from(sorted(BOUNDS)).flatmap(EXPRESSIONS.__getitem__).map(" ".join)
noise = st.text(alphabet="0123456789*/-,? LW#", max_size=30)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(st.one_of(plain, noise))
def test_what_is_plainly_valid_croniter_accepts(expression):
    if plainly_valid(expression):
        assert croniter_accepts(expression), expression
    assert _valid_cron(expression) == croniter_accepts(expression), expression


def test_the_usual_schedules_need_no_croniter():
    for expression in ("0 */15 * * * ?", "*/5 * * * *", "0 9 * * 1-5", "30 1 * * *",
                       "0 0 12 ? * * 2030", "0,30 8-18 * * *"):
        assert plainly_valid(expression), expression
    for expression in ("0 0 12 ? * MON", "0 12 * * MON#2", "*/0 * * * *", "* * 0 * *",
                       "0 0 ? * * *"):
        assert not plainly_valid(expression), expression
