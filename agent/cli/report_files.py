"""The report files of a run, a rollout or a journaled run (`--report-json`, `--junit`, `--report-html`):
their paths checked before the work, and the reports written after it, by `run`, `rollout status` and
`runs show` alike."""

from __future__ import annotations

from pathlib import Path


def check_outputs(**paths: Path | None) -> None:
    """Before the run: an output path at a FIFO or a device is refused now, not after the run (or never)."""
    from agent.atomicfile import check_output_path

    for option, path in paths.items():
        if path is not None:
            check_output_path(path, "--" + option.replace("_", "-"))


def write_reports(result, report_json: Path | None, junit: Path | None, report_html: Path | None) -> None:
    if report_json or junit:  # the report module brings xml.etree and the schema: only when asked for
        from agent.runner.report import write_junit, write_report

        if report_json:
            write_report(report_json, result)
        if junit:
            write_junit(junit, result)
    if report_html:
        from agent.runner.htmlreport import write_html

        write_html(report_html, result)
