"""Reading a user's file: every failure is one line of the caller's error class, naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import BillingFileError, InventoryError, PlaybookError
from agent.inputfile import read_input_file


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
