"""Benchmarks (pytest-benchmark; run with `pytest tests/test_bench.py --benchmark-enable`).
By default they run once, as smoke tests of the benchmark code."""

from __future__ import annotations

from click.testing import CliRunner

from routing_dsl.bench import bench_plan, generate, naive_scan
from routing_dsl.cli import main
from routing_dsl.interpreter import run_plan


def test_bench_routing_throughput(benchmark):
    snapshot = generate(facilities=300, ship_groups=1000, products=500)
    plan = bench_plan()
    result = benchmark(run_plan, plan, snapshot)
    assert result["allocations"]


def test_bench_naive_baseline(benchmark):
    snapshot = generate(facilities=100, ship_groups=200, products=200)
    assert benchmark(naive_scan, snapshot) > 0


def test_bench_command_reports_a_ratio():
    result = CliRunner().invoke(main, ["bench", "--facilities", "50", "--ship-groups", "100",
                                       "--lsp-lines", "200", "--hostile-size", "5000",
                                       "--products", "100", "--rounds", "1"])
    assert result.exit_code == 0, result.output
    assert "x the baseline's throughput" in result.stdout
