"""harness/inputs.py at CI size: every kind of user input, mutated, through its commands (seeded cases and
hypothesis examples): no traceback, no hang, nothing touched outside where it belongs (issue 20's table)."""

from __future__ import annotations

from harness import inputs

BUDGET = {"cases": 2, "hypothesis": 2}


def test_every_input_kind_has_zero_tracebacks_hangs_and_files_touched_outside(capsys):
    args = inputs.parser().parse_args(
        [
            "--cases",
            str(BUDGET["cases"]),
            "--hypothesis",
            str(BUDGET["hypothesis"]),
            "--jobs",
            "2",
            "--subprocess-every",
            "2",
        ]
    )
    rows = inputs.table(args)
    with capsys.disabled():
        print()
        inputs.print_table(rows, args)
    assert [row.kind for row in rows] == list(inputs.KINDS)
    for row in rows:
        assert (row.seeded.cases, row.hypothesis.cases) == (BUDGET["cases"], BUDGET["hypothesis"]), row.kind
        assert row.count("commands") >= row.seeded.cases + row.hypothesis.cases, row.kind
        assert set(inputs.zero_columns(row).values()) == {0}, _failed(row)


def _failed(row) -> str:
    """The row's counts, then each failing command and what was wrong with it, a line each. A text:
    pytest shows it whole, where it cuts the repr of anything else to a few hundred characters."""
    lines = [f"{row.kind}: {inputs.zero_columns(row)}"]
    for mode, totals in (("seeded", row.seeded), ("hypothesis", row.hypothesis)):
        for failure in totals.failures:
            for command in failure["commands"]:
                if command["problems"]:
                    args = " ".join(map(str, command["args"][:4]))
                    lines.append(
                        f"{mode} #{failure['index']}: {args} -> {command['exit_code']}: {'; '.join(command['problems'])}"
                    )
    return "\n".join(lines)


def test_the_guard_sees_a_file_changed_added_or_removed_outside_the_case(tmp_path):
    workspace = inputs.Workspace(tmp_path / "ws")
    case = workspace.new_case()
    source = case / "src.ini"
    source.write_text("web1\n")
    before = workspace.guarded(case, [source])
    (case / "output.yaml").write_text("written where it belongs\n")
    assert inputs._touched(before, workspace.guarded(case, [source])) == []
    (workspace.victim / "precious").write_text("changed\n")
    (workspace.root / "planted").write_text("x")
    (workspace.root / "fleet.yaml").unlink()
    source.write_text("web2\n")
    touched = inputs._touched(before, workspace.guarded(case, [source]))
    assert touched == sorted(
        str(path)
        for path in (workspace.victim / "precious", workspace.root / "planted", workspace.root / "fleet.yaml", source)
    )
