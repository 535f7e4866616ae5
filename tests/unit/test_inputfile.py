"""Reading a user's file: every failure is one line of the caller's error class, naming the file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.errors import BillingFileError, InventoryError, PlaybookError
from agent.inputfile import read_input_bytes, read_input_file


def test_a_missing_file_names_it_and_gives_the_hint(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(InventoryError) as raised:
        read_input_file(path, InventoryError, what="inventory file", hint="pass it with -i")
    assert str(raised.value) == f"{path}: no such inventory file; pass it with -i"


def test_a_directory_is_refused_with_the_callers_error_class(tmp_path: Path) -> None:
    with pytest.raises(PlaybookError) as raised:
        read_input_file(tmp_path, PlaybookError, what="playbook")
    assert str(raised.value) == f"{tmp_path}: is a directory, not a playbook; give the path of the file"


def test_bytes_that_are_not_utf8_are_reported_at_their_line(tmp_path: Path) -> None:
    path = tmp_path / "billing.csv"
    path.write_bytes(b"date,license_id\n2026-01-01,7\nM\xfcller,8\n")
    with pytest.raises(BillingFileError) as raised:
        read_input_file(path, BillingFileError, what="billing CSV")
    assert str(raised.value) == f"{path}:3: the billing CSV is not UTF-8 text (byte 0xfc); save it as UTF-8"


def test_a_byte_order_mark_is_not_part_of_the_text(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_bytes("\ufeffhosts: {}\n".encode())
    assert read_input_file(path, InventoryError) == "hosts: {}\n"


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)  # nobody writes: reading it would block forever
    with pytest.raises(PlaybookError) as raised:
        read_input_file(fifo, PlaybookError, what="playbook")
    assert str(raised.value) == f"{fifo}: is a FIFO, not a regular file; give the path of a file"


def test_a_device_is_refused_before_it_is_read() -> None:
    with pytest.raises(PlaybookError) as raised:
        read_input_bytes("/dev/zero", PlaybookError, what="upload source")
    assert str(raised.value) == "/dev/zero: is a character device, not a regular file; give the path of a file"


def test_a_file_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big"
    path.write_bytes(b"x" * 2048)
    assert read_input_bytes(path, PlaybookError, max_bytes=2048).data == b"x" * 2048
    with pytest.raises(PlaybookError) as raised:
        read_input_bytes(path, PlaybookError, what="file", max_bytes=1024)
    assert str(raised.value) == f"{path}: the file is larger than 1024 bytes; ispagent reads files up to that size"


def test_the_mode_of_the_file_read_is_returned(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    path.write_text("u:p")
    path.chmod(0o640)
    assert read_input_bytes(path, PlaybookError).mode == 0o640
