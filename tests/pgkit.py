"""A PostgreSQL schema of its own per test, on the server `.ci/setup` starts (or $ISPAGENT_TEST_PG_URL)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

PG_URL = os.environ.get(
    "ISPAGENT_TEST_PG_URL", "postgresql+psycopg://ispagent_test:ispagent-test-pw@127.0.0.1/ispagent_test"
)


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


class CuttableProxy:
    """A TCP forwarder to PostgreSQL on 127.0.0.1 that a test can cut (every connection reset, new ones
    refused: the database has gone away) and restore on the same port."""

    def __init__(self, target: tuple[str, int] = ("127.0.0.1", 5432)) -> None:
        import socket
        import threading

        self.target = target
        self._lock = threading.Lock()
        self._sockets: list = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._serve()

    def url(self, schema_url: str) -> str:
        return schema_url.replace("@127.0.0.1/", f"@127.0.0.1:{self.port}/")

    def cut(self) -> None:
        import socket

        with self._lock:
            listener, self._listener = self._listener, None
            doomed, self._sockets = self._sockets, []
        # close() alone does not wake the thread blocked in accept(): it would still take one more
        # connection (a reconnecting pool's), and the database would not be gone for it.
        try:
            listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        listener.close()
        for sock in doomed:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def restore(self) -> None:
        import socket

        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._serve()

    def _serve(self) -> None:
        import socket
        import threading

        listener = self._listener

        def pump(source, sink) -> None:
            try:
                while data := source.recv(65536):
                    sink.sendall(data)
            except OSError:
                pass
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        def accept() -> None:
            while True:
                try:
                    client, _ = listener.accept()
                except OSError:
                    return
                server = socket.create_connection(self.target)
                with self._lock:
                    self._sockets += [client, server]
                threading.Thread(target=pump, args=(client, server), daemon=True).start()
                threading.Thread(target=pump, args=(server, client), daemon=True).start()

        threading.Thread(target=accept, daemon=True).start()
