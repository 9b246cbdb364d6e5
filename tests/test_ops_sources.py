"""Live data in: a snapshot read from SQL (the reference OMS schema, or any schema through a
mapping) routes exactly as the file it was loaded from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from routing_dsl.cli import main
from routing_dsl.result import dump_result
from routing_dsl.ops.oms import schema_sql

from .conftest import ROOT, postgres_database

EXAMPLES = sorted(p for p in (ROOT / "examples").iterdir() if p.is_dir())


@pytest.fixture(params=["sqlite", "postgresql"])
def oms_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'oms.db'}"
        return
    with postgres_database("routing_oms", driver="postgresql") as url:
        yield url


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def test_every_example_routes_the_same_from_sql_as_from_its_file(oms_url, tmp_path):
    for folder in EXAMPLES:
        route = str(next(folder.glob("*.route")))
        loaded = invoke("oms", "load", str(folder / "snapshot.json"), "--db", oms_url)
        assert loaded.exit_code == 0, loaded.output
        from_sql = invoke("run", route, "--snapshot", oms_url, "--pretty")
        assert from_sql.exit_code == 0, from_sql.output
        assert from_sql.stdout == (folder / "expected.json").read_text(), folder.name


def test_a_mapping_reads_another_schema(tmp_path):
    url = f"sqlite:///{tmp_path / 'oms.db'}"
    folder = ROOT / "examples" / "omnichannel"
    assert invoke("oms", "load", str(folder / "snapshot.json"), "--db", url).exit_code == 0
    engine = sa.create_engine(url)
    with engine.begin() as connection:  # the OMS keeps its inventory under other names
        connection.exec_driver_sql(
            "create table stock (n integer, fac text, sku text, qty real, reserve real, "
            "brokerable integer, velocity real)")
        connection.exec_driver_sql(
            "insert into stock select position, facility, product, atp, minimum_stock, "
            "allow_brokering, sales_velocity from oms_inventory")
        connection.exec_driver_sql("delete from oms_inventory")
    engine.dispose()
    mapping = tmp_path / "mapping.toml"
    mapping.write_text('inventory = """select fac as facility, sku as product, qty as atp, '
                       'reserve as minimum_stock, brokerable as allow_brokering, velocity as '
                       'sales_velocity from stock order by n"""\n')
    route = str(folder / "omnichannel.route")
    result = invoke("run", route, "--snapshot", url, "--mapping", str(mapping), "--pretty")
    assert result.exit_code == 0, result.output
    assert result.stdout == (folder / "expected.json").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text('stock = "select 1"\n')
    refused = invoke("run", route, "--snapshot", url, "--mapping", str(bad))
    assert refused.exit_code == 2 and "unknown: stock" in refused.stderr


def test_sql_problems_are_input_errors(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    route = str(ROOT / "examples" / "omnichannel" / "omnichannel.route")
    result = invoke("run", route, "--snapshot", url)
    assert result.exit_code == 2
    assert "no such table: oms_meta" in result.stderr
    assert "Traceback" not in result.output


def test_the_shipped_schema_file_is_current():
    assert (ROOT / "docs" / "oms-schema.sql").read_text() == schema_sql("postgresql")


def test_a_bad_row_in_sql_names_the_json_path(tmp_path):
    url = f"sqlite:///{tmp_path / 'oms.db'}"
    folder = ROOT / "examples" / "omnichannel"
    assert invoke("oms", "load", str(folder / "snapshot.json"), "--db", url).exit_code == 0
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("update oms_order_item set quantity = -2 where position = 0")
    engine.dispose()
    result = invoke("run", str(folder / "omnichannel.route"), "--snapshot", url)
    assert result.exit_code == 2
    assert "orders[0].ship_groups[0].items[0].quantity: must be > 0" in result.stderr
    assert json.loads(Path(folder / "snapshot.json").read_text())  # the file is untouched


def test_a_number_outside_the_supported_range_in_sql_names_the_json_path(tmp_path):
    url = f"sqlite:///{tmp_path / 'oms.db'}"
    folder = ROOT / "examples" / "omnichannel"
    assert invoke("oms", "load", str(folder / "snapshot.json"), "--db", url).exit_code == 0
    engine = sa.create_engine(url)
    with engine.begin() as connection:  # SQLite reads 1e999 as infinity
        connection.exec_driver_sql("update oms_order_item set quantity = 1e999 "
                                   "where position = 0")
        connection.exec_driver_sql(f"update oms_facility set orders_today = {2**53} "
                                   "where position = 0")
    engine.dispose()
    for engine_name in ("reference", "fast"):
        result = invoke("run", str(folder / "omnichannel.route"), "--snapshot", url,
                        "--engine", engine_name)
        assert result.exit_code == 2, result.output
        assert result.stderr.splitlines() == [
            f"error: {url}: facilities[0].orders_today: 9007199254740992 is outside the "
            "supported range (finite numbers up to 9007199254740991)",
            f"error: {url}: orders[0].ship_groups[0].items[0].quantity: Infinity is outside "
            "the supported range (finite numbers up to 9007199254740991)"]


def test_the_operations_doc_sql_commands_run(tmp_path, monkeypatch):
    import re
    import shlex
    import shutil

    doc = (ROOT / "docs" / "operations.md").read_text()
    block = re.search(r"<!-- tested: oms -->\n```sh\n(.*?)```", doc, re.S).group(1)
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    for line in block.strip().splitlines():
        words = shlex.split(line)
        result = invoke(*words[1:])
        assert result.exit_code == 0, (line, result.output)
    expected = json.loads((ROOT / "examples" / "omnichannel" / "expected.json").read_text())
    assert (tmp_path / "result.json").read_bytes() == dump_result(expected)


def loaded_omnichannel(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'oms.db'}"
    folder = ROOT / "examples" / "omnichannel"
    assert invoke("oms", "load", str(folder / "snapshot.json"), "--db", url).exit_code == 0
    return url


def test_a_mapping_may_leave_out_optional_columns(tmp_path):
    # a new user's mapping without `allow_brokering` crashed with KeyError (exit 3)
    url = loaded_omnichannel(tmp_path)
    mapping = tmp_path / "mapping.toml"
    mapping.write_text('inventory = "select facility, product, atp from oms_inventory order by '
                       'position"\nproduct_stores = "select id from oms_product_store"\n'
                       'ship_groups = "select order_id, id, facility, lat, lon from '
                       'oms_ship_group order by position"\n')
    folder = ROOT / "examples" / "omnichannel"
    result = invoke("run", str(folder / "omnichannel.route"), "--snapshot", url,
                    "--mapping", str(mapping), "--out", "-")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["allocations"]  # allow_brokering took its default: true


def test_a_misnamed_column_is_one_error_naming_it(tmp_path):
    # it was two errors per row (36 lines for 18 rows)
    url = loaded_omnichannel(tmp_path)
    mapping = tmp_path / "mapping.toml"
    mapping.write_text('inventory = "select facility, product, atp as qty, minimum_stock, '
                       'allow_brokering from oms_inventory"\n')
    result = invoke("run", str(ROOT / "examples" / "omnichannel" / "omnichannel.route"),
                    "--snapshot", url, "--mapping", str(mapping), "--out", "-")
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 2, result.stderr
    assert "inventory query: no column `atp` (it needs facility, product, atp)" in errors[0]
    assert "inventory query: unknown column `qty` (columns: facility, product, atp," in errors[1]
