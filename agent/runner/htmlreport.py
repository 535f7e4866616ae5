"""The HTML run report: one self-contained page (no scripts, no outside resources) to read a rollout.

Summary counts, then the failed hosts first with their failing step and message, every host's
step timeline (bars as long as the steps took), the license actions and the money. Rendered from
the same RunResult as the JSON report, masked the same way.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import jinja2

from agent.atomicfile import write_output
from agent.runner.drift import AUDIT_PREFIX
from agent.runner.events import HostOutcome, StepRecord
from agent.runner.run import FAILED_STATUSES, RunResult
from agent.secrets import masked

STATUSES = ("ok", "changed", "failed", "unreachable", "skipped")
# What each colour of the timeline means, in the order of the bars' classes (s-<class>).
TIMELINE_LEGEND = (
    ("ok", "ok: nothing to change"),
    ("changed", "changed"),
    ("failed", "failed"),
    ("skipped", "skipped"),
    ("audit", "audit (a drift-only run's read-only check, clean)"),
)
# Failed hosts first, then what changed: the order a person reads a rollout in.
_ORDER = {"failed": 0, "unreachable": 1, "skipped": 2, "changed": 3, "ok": 4}


@dataclass(frozen=True)
class TimelineStep:
    step: str
    status: str
    duration_s: float
    message: str
    audit: bool
    weight: float  # flex-grow: the share of the host's time


@dataclass(frozen=True)
class HostRow:
    name: str
    address: str
    status: str
    error: str | None
    failing_step: str | None
    steps: tuple[TimelineStep, ...]
    total: float
    width: float  # percent of the slowest host's time
    drift: tuple[str, ...]


def failing_step(host: HostOutcome) -> str | None:
    """The step a failed host stopped at (the last failed record), None when it never connected."""
    failed = [record.step for record in host.steps if record.status == "failed"]
    return failed[-1] if failed else None


def host_rows(result: RunResult) -> list[HostRow]:
    """One row per host, failed hosts first (then by name within a status, as the inventory has them)."""
    totals = {host.name: sum(_ms(record.duration_s) for record in host.steps) for host in result.hosts}
    slowest = max(totals.values(), default=0.0) or 1.0
    hosts = sorted(result.hosts, key=lambda host: _ORDER.get(host.status, 9))
    return [
        HostRow(
            name=host.name,
            address=host.address,
            status=host.status,
            error=host.error,
            failing_step=failing_step(host),
            steps=tuple(_timeline(host.steps)),
            total=totals[host.name],
            width=max(1.0, 100.0 * totals[host.name] / slowest),
            drift=tuple((host.report.get("drift") or {}).get("reasons") or ()),
        )
        for host in hosts
    ]


def _timeline(records: tuple[StepRecord, ...]) -> list[TimelineStep]:
    return [
        TimelineStep(
            r.step,
            r.status,
            _ms(r.duration_s),
            r.message,
            r.step.startswith(AUDIT_PREFIX),
            max(_ms(r.duration_s), 0.001),
        )
        for r in records
    ]


def _ms(seconds: float) -> float:
    """A step's time to the millisecond, as the journal keeps it: the page of a run is the same from the
    run's own result and from its journal (`runs show`)."""
    return round(seconds, 3)


def _notices(result: RunResult) -> list[dict]:
    notices = []
    failures = sum(1 for host in result.hosts if host.status in FAILED_STATUSES)
    if failures:
        notices.append({"bad": True, "text": f"{failures} of {len(result.hosts)} hosts failed or were unreachable"})
    if result.reason:
        notices.append({"bad": result.status != "finished", "text": f"run {result.status}: {result.reason}"})
    standing = result.standing
    if standing:
        for item in standing.unconfirmed:
            notices.append(
                {
                    "bad": False,
                    "text": f"activation of license {item.license_id} on {item.host} not yet "
                    "confirmed by the partner account (retried next run)",
                }
            )
        if standing.expiring:
            shown = ", ".join(f"{e.license_id} ({e.licname or e.ip}, {e.expires})" for e in standing.expiring[:10])
            notices.append(
                {"bad": False, "text": f"{len(standing.expiring)} license(s) expire within 30 days: {shown}"}
            )
        for problem in standing.problems:
            notices.append({"bad": True, "text": f"could not read {problem}"})
    return notices


def _licenses(result: RunResult) -> list[dict]:
    rows = []
    for host in result.hosts:
        lic = host.report.get("license")
        if lic:
            rows.append({"host": host.name, **lic})
    return rows


def render_html(result: RunResult) -> str:
    """The page, every value masked before HTML escapes it (a secret with & or < was missed after)."""
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("agent.runner", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=masked,  # each value masked before it is escaped
    )
    licenses = _licenses(result)
    currency = (result.standing.currency if result.standing else None) or ""
    drift = None
    if any("drift" in host.report for host in result.hosts):
        drifted = len(result.drifted())
        drift = {"drifted": drifted, "clean": sum(1 for h in result.hosts if "drift" in h.report) - drifted}
    page = environment.get_template("report.html.j2").render(
        run=_RunView(result),
        duration=_duration(result),
        statuses=STATUSES,
        counts={status: result.count(status) for status in STATUSES},
        drift=drift,
        notices=_notices(result),
        failed=[row for row in host_rows(result) if row.status in FAILED_STATUSES],
        hosts=host_rows(result),
        licenses=licenses,
        license_actions=sorted(Counter(row.get("action") for row in licenses).items()),
        standing=result.standing,
        legend=TIMELINE_LEGEND,
        money=lambda value: "—" if value is None else f"{value:,.2f} {currency}".strip(),
    )
    return page


class _RunView:
    def __init__(self, result: RunResult) -> None:
        self.__dict__.update(result.__dict__)
        self.playbook_name = Path(result.playbook).name


def _duration(result: RunResult) -> float:
    try:
        end = datetime.fromisoformat(result.finished_at) if result.finished_at else datetime.now().astimezone()
        return max(0.0, (end - datetime.fromisoformat(result.started_at)).total_seconds())
    except (TypeError, ValueError):
        return 0.0


def write_html(path: Path, result: RunResult) -> None:
    write_output(path, render_html(result).encode(), "HTML report")
