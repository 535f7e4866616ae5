"""--report-html: one self-contained page, opened in headless Chromium and read back from its DOM."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from htmlkit import dump_dom, screenshot
from runkit import standing_with_unconfirmed, twenty_host_result

from agent.runner.htmlreport import render_html, write_html


class _Rows(HTMLParser):
    """Host rows (data-host, data-status) and summary counts (data-count) as the browser built them."""

    def __init__(self) -> None:
        super().__init__()
        self.hosts: list[tuple[str, str]] = []
        self.counts: dict[str, str] = {}
        self._count: str | None = None
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "data-host" in attrs:
            self.hosts.append((attrs["data-host"], attrs["data-status"]))
        if "data-count" in attrs:
            self._count = attrs["data-count"]
        for key in ("src", "href"):
            if attrs.get(key):
                self.external.append(attrs[key])

    def handle_data(self, data):
        if self._count:
            self.counts[self._count] = data.strip()
            self._count = None


def test_twenty_host_report_in_chromium_lists_the_three_failures_first_with_their_step(tmp_path):
    result = twenty_host_result(failures=3, **standing_with_unconfirmed())
    page = tmp_path / "report.html"
    write_html(page, result)
    dom = dump_dom(page)
    rows = _Rows()
    rows.feed(dom)
    assert len(rows.hosts) == 20
    assert [status for _, status in rows.hosts[:3]] == ["failed"] * 3
    assert {name for name, _ in rows.hosts[:3]} == {"h1", "h2", "h3"}
    assert rows.counts["failed"] == "3" and rows.counts["hosts"] == "20" and rows.counts["ok"] == "16"
    assert rows.external == []  # self-contained: no scripts, styles or images from elsewhere
    failed_table = dom[dom.index('id="failed"') : dom.index('id="hosts"')]
    assert "preflight broke on h2" in failed_table and "<td>verify</td>" in failed_table
    assert "3100005" in dom and "not yet confirmed" in dom and "120.00 EUR" in dom and "8.00 EUR" in dom
    png = screenshot(page, tmp_path / "report.png")
    assert png.stat().st_size > 10_000  # a rendered page, not a blank one


def test_messages_are_escaped_and_secrets_masked():
    from runkit import outcome

    from agent.runner.run import RunResult
    from agent.secrets import forget_secrets, register_secret

    register_secret("s3cr3t-activation-key")
    try:
        host = outcome("h1", "failed", failing="verify")
        host = host.__class__(
            host.name,
            host.address,
            host.status,
            host.steps,
            "<script>alert(1)</script> key s3cr3t-activation-key",
            host.report,
        )
        page = render_html(RunResult("r", "p.yaml", "i", "2026-01-01T00:00:00+00:00", False, [host]))
    finally:
        forget_secrets()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "s3cr3t-activation-key" not in page
    assert not re.search(r"<(script|link|img)\b", page)


def test_every_colour_of_the_timeline_has_a_legend_entry():
    from dataclasses import replace

    from agent.runner.events import StepRecord

    result = twenty_host_result(failures=3)
    audited = replace(
        result.hosts[5],
        steps=(
            StepRecord("audit:facts", "ok", False, 0.2, ""),
            StepRecord("license", "skipped", False, 0.1, "not needed"),
        ),
    )
    result.hosts[5] = audited
    page = render_html(result)
    used = set(re.findall(r'<span class="s-([a-z]+)" style="flex', page))
    assert {"ok", "changed", "failed", "skipped", "audit"} <= used
    legend = page.split('id="legend"', 1)[1].split("</div></div>", 1)[0]
    assert set(re.findall(r'data-legend="([a-z]+)"><span class="s-\1">', legend)) == used
