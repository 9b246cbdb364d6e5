"""Shared fixtures; ``--update-goldens`` rewrites expected files from current behaviour."""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).resolve().parent / "golden"


def pytest_addoption(parser):
    parser.addoption("--update-goldens", action="store_true",
                     help="rewrite golden files with the current output")


@pytest.fixture
def golden(request):
    """``golden(path, actual)``: compare with the file, or rewrite it under --update-goldens."""
    update = request.config.getoption("--update-goldens")

    def check(path: Path, actual: str) -> None:
        if update or not path.exists():
            if not update:
                pytest.fail(f"missing golden file {path}; run `make goldens` to create it")
            path.write_text(actual, encoding="utf-8")
            return
        assert actual == path.read_text(encoding="utf-8"), f"golden mismatch: {path}"

    return check


PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@contextmanager
def postgres_database(prefix: str, driver: str = "postgresql+psycopg"):
    """A fresh database on the PostgreSQL server at 127.0.0.1:5432, dropped afterwards; the
    test is skipped, saying why, when the server is not there."""
    import uuid

    import sqlalchemy as sa
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT",
                             connect_args={"connect_timeout": 3})
    try:
        with admin.connect():
            pass
    except Exception as error:  # noqa: BLE001 - any failure means "no server here"
        admin.dispose()
        pytest.skip(f"PostgreSQL is not reachable at 127.0.0.1:5432 ({type(error).__name__})")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield f"{driver}://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def browser_or_skip():
    """Playwright's sync API and Debian's chromium for a console test module, or the module
    skipped saying which is missing."""
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is not installed (pip install -e '.[dev]')")
    if not Path(chromium).exists():
        pytest.skip("chromium is not installed (make test installs it with apt-get when it can)",
                    allow_module_level=True)
    return sync_api, chromium
