"""A PostgreSQL schema of its own per test, on the server `.ci/setup` starts (or $ISPAGENT_TEST_PG_URL)."""

from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from typing import Iterator

import pytest

PG_URL = os.environ.get("ISPAGENT_TEST_PG_URL", "postgresql+psycopg://ispagent_test:ispagent-test-pw@127.0.0.1/ispagent_test")


@contextmanager
def pg_schema() -> Iterator[str]:
    """A ledger URL whose tables live in a new schema, dropped afterwards. Skips (fails under CI) without a server."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
    name = "t_" + secrets.token_hex(6)
    try:
        with engine.begin() as db:
            db.execute(text(f"CREATE SCHEMA {name}"))
    except OperationalError as error:
        engine.dispose()
        reason = f"no PostgreSQL at {PG_URL.split('@')[-1]} ({str(error.orig).splitlines()[0]}): run `bash .ci/setup`"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{name}"
    finally:
        with engine.begin() as db:
            db.execute(text(f"DROP SCHEMA {name} CASCADE"))
        engine.dispose()
