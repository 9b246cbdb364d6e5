"""The CLI's views of a run and of the run store: `routing run --format csv|table`, the
progress display of long runs, `routing batches`."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from routing_dsl.cli import main, table_text

from .conftest import ROOT

EXAMPLE = ROOT / "examples" / "omnichannel"
SOURCE = str(EXAMPLE / "omnichannel.route")
SNAPSHOT = str(EXAMPLE / "snapshot.json")
EXPECTED = json.loads((EXAMPLE / "expected.json").read_text())


def invoke(*args: str, **options):
    return CliRunner().invoke(main, list(args), **options)


def test_csv_has_one_row_per_allocation_and_per_unfilled_item():
    result = invoke("run", SOURCE, "--snapshot", SNAPSHOT, "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(rows[0]) == ["order", "ship_group", "item", "product", "outcome", "facility",
                             "quantity", "rule", "distance", "cost", "delivery_date"]
    allocated = [r for r in rows if r["outcome"] == "allocated"]
    assert [(r["order"], r["item"], r["facility"], float(r["quantity"])) for r in allocated] == [
        (a["order"], a["item"], a["facility"], a["quantity"]) for a in EXPECTED["allocations"]]
    unfilled = [r for r in rows if r["outcome"] != "allocated"]
    assert [(r["order"], r["outcome"], r["facility"]) for r in unfilled] == [
        (u["order"], u["action"], u["queue"]) for u in EXPECTED["unfillable"]]
    assert allocated[0]["distance"].endswith(" mi")
    assert "6 allocations" in result.stderr  # the summary stays on stderr


def test_csv_carries_costs_and_delivery_dates_with_rate_cards(tmp_path):
    folder = ROOT / "examples" / "shipping_cost"
    out = tmp_path / "rows.csv"
    result = invoke("run", str(folder / "shipping_cost.route"), "--snapshot",
                    str(folder / "snapshot.json"), "--format", "csv", "--out", str(out))
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert rows and all(r["cost"] and r["delivery_date"] for r in rows
                        if r["outcome"] == "allocated")


def test_a_table_fits_the_terminal_and_a_file_gets_it_whole(tmp_path, monkeypatch):
    rows = [{"order": "O-1", "rule": "a rule with a rather long name indeed", "quantity": 2.0}]
    narrow = table_text(("order", "rule", "quantity"), rows, width=30)
    assert all(len(line) <= 30 for line in narrow.splitlines())
    assert "…" in narrow and narrow.splitlines()[1].endswith("2")
    out = tmp_path / "table.txt"
    result = invoke("run", SOURCE, "--snapshot", SNAPSHOT, "--format", "table",
                    "--out", str(out))
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    assert lines[0].split()[:3] == ["order", "ship", "group"]
    assert len(lines) == 1 + len(EXPECTED["allocations"]) + len(EXPECTED["unfillable"])
    assert "Nearest warehouse ships everything" in out.read_text()  # nothing cut in a file


def _on_a_terminal(command: list[str], columns: int = 80, timeout: float = 120,
                   progress_after: float | str = 2.0) -> str:
    """Run ``command`` with a pseudo-terminal for stdout and stderr; all it printed."""
    leader, follower = pty.openpty()
    import fcntl
    import struct
    import termios
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    process = subprocess.Popen(command, stdout=follower, stderr=follower, stdin=subprocess.DEVNULL,
                               env={**os.environ, "COLUMNS": str(columns),
                                    "ROUTING_PROGRESS_AFTER": str(progress_after)})
    os.close(follower)
    chunks = []
    deadline = time.monotonic() + timeout
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the other end closed
            break
        if not data:
            break
        chunks.append(data)
        assert time.monotonic() < deadline
    process.wait(timeout=timeout)
    os.close(leader)
    assert process.returncode == 0, b"".join(chunks)[-2000:]
    return b"".join(chunks).decode("utf-8", "replace")


@pytest.fixture(scope="module")
def slow(tmp_path_factory):
    """A run of a second or more: the reference engine explaining 3,000 ship groups."""
    from routing_dsl.bench.suite import BENCH_ROUTE, generate
    folder = tmp_path_factory.mktemp("slow")
    (folder / "big.json").write_text(
        generate(facilities=400, ship_groups=3_000, products=3000).model_dump_json())
    (folder / "bench.route").write_text(BENCH_ROUTE)
    return folder


def test_a_long_run_shows_its_progress_on_a_terminal_and_nowhere_else(slow):
    command = [sys.executable, "-m", "routing_dsl", "run", str(slow / "bench.route"),
               "--snapshot", str(slow / "big.json"), "--engine", "reference", "--explain",
               "--out", str(slow / "result.json")]
    # drawn from the start (every 0.2 s), so a run of a second or two shows it
    shown = _on_a_terminal(command, progress_after=0)
    assert "routing   [" in shown and "%" in shown
    assert "\r\x1b[K" in shown  # the line is redrawn in place, and cleared at the end
    assert "wrote " in shown
    # a pipe never shows it, even when it is due
    piped = subprocess.run(command, capture_output=True, text=True, timeout=120,
                           env={**os.environ, "ROUTING_PROGRESS_AFTER": "0"})
    assert piped.returncode == 0
    assert "[" not in piped.stderr and "\x1b" not in piped.stderr


def test_progress_off_shows_none_on_a_terminal(slow):
    shown = _on_a_terminal([sys.executable, "-m", "routing_dsl", "run", str(slow / "bench.route"),
                            "--snapshot", str(slow / "big.json"), "--engine", "reference",
                            "--explain", "--out", str(slow / "quiet.json")],
                           progress_after="off")
    assert "routing   [" not in shown and "\x1b[K" not in shown and "wrote " in shown


def test_a_short_run_on_a_terminal_shows_no_progress():
    # "short": well under the delay, however loaded the machine that runs the suite
    shown = _on_a_terminal([sys.executable, "-m", "routing_dsl", "run", SOURCE, "--snapshot",
                            SNAPSHOT, "--out", os.devnull], progress_after=60)
    assert "routing   [" not in shown and "\x1b[K" not in shown


def test_a_table_on_a_terminal_is_sized_to_it():
    shown = _on_a_terminal([sys.executable, "-m", "routing_dsl", "run", SOURCE, "--snapshot",
                            SNAPSHOT, "--format", "table"], columns=72, progress_after=60)
    table = [line for line in shown.splitlines() if line.startswith(("ord", "O-"))]
    assert len(table) == 1 + len(EXPECTED["allocations"]) + len(EXPECTED["unfillable"])
    assert all(len(line.rstrip("\r")) <= 72 for line in table)


def test_batches_lists_filters_and_says_it_as_json(tmp_path):
    db = str(tmp_path / "runs.db")
    for _ in range(2):
        assert invoke("run", SOURCE, "--snapshot", SNAPSHOT, "--db", db, "--out", os.devnull
                      ).exit_code == 0
    text = invoke("batches", "--db", db)
    assert text.exit_code == 0, text.output
    lines = text.stdout.splitlines()
    assert lines[0].split()[:4] == ["started", "status", "trigger", "group"]
    assert len(lines) == 3 and all("succeeded" in line for line in lines[1:])
    listed = json.loads(invoke("batches", "--db", db, "--format", "json").stdout)
    assert len(listed) == 2 and listed[0]["started"] >= listed[1]["started"]
    assert listed[0]["plan_hash"] == listed[1]["plan_hash"] and len(listed[0]["plan_hash"]) == 64
    # the rules' label (here the git commit of the work tree) and a short hash
    label = listed[0]["version_label"]
    assert listed[0]["version"] == (f"{label}@{listed[0]['plan_hash'][:8]}" if label
                                    else listed[0]["plan_hash"][:12])
    # the second run found nothing left: the first's reservations stand until the OMS
    # acknowledges them
    assert listed[1]["allocations"] == len(EXPECTED["allocations"])
    assert listed[0]["allocations"] == 0
    assert json.loads(invoke("batches", "--db", db, "--format", "json", "--status", "failed"
                             ).stdout) == []
    assert json.loads(invoke("batches", "--db", db, "--format", "json", "--group", "nope"
                             ).stdout) == []
    assert json.loads(invoke("batches", "--db", db, "--format", "json", "--since",
                             "2999-01-01").stdout) == []
    assert len(json.loads(invoke("batches", "--db", db, "--format", "json", "--limit", "1"
                                 ).stdout)) == 1
    assert invoke("batches", "--db", db, "--status", "bogus").exit_code == 2
    assert invoke("batches", "--db", db, "--since", "yesterday").exit_code == 2
