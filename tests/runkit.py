"""Made-up run results for tests of what is written about a run (metrics, HTML, summary)."""

from __future__ import annotations

from decimal import Decimal

from agent.runner.events import HostOutcome, StepRecord
from agent.runner.run import RunResult
from agent.runner.standing import AccountStanding, Expiring, Unconfirmed

STEPS = ("facts", "preflight", "license", "installer", "configure", "verify", "report")


def outcome(
    name: str,
    status: str = "changed",
    *,
    failing: str | None = None,
    drift: list[str] | None = None,
    action: str | None = "existing",
) -> HostOutcome:
    records = []
    for index, step in enumerate(STEPS):
        if failing and step == failing:
            records.append(StepRecord(step, "failed", False, 0.5, f"{step} broke on {name}"))
            break
        records.append(
            StepRecord(
                step,
                "changed" if status == "changed" and step == "configure" else "ok",
                step == "configure" and status == "changed",
                0.1 * (index + 1),
                "",
            )
        )
    report = {}
    if action:
        report["license"] = {"id": f"31{name[1:]:0>5}", "edition": "lite", "period": "monthly", "action": action}
    if drift is not None:
        report["drift"] = {"drifted": bool(drift), "reasons": drift}
    error = f"{failing}: {failing} broke on {name}" if failing else None
    return HostOutcome(name, f"198.18.0.{int(name[1:]) + 1}", status, tuple(records), error, report)


def twenty_host_result(failures: int = 3, **standing) -> RunResult:
    hosts = []
    for index in range(1, 21):
        name = f"h{index}"
        if index <= failures:
            hosts.append(outcome(name, "failed", failing="verify" if index % 2 else "preflight"))
        elif index == 4:
            hosts.append(outcome(name, "changed", action="ordered"))
        else:
            hosts.append(outcome(name, "ok"))
    return RunResult(
        "20261126T020000-abc123",
        "/srv/playbooks/reprovision.yaml",
        "/srv/fleet.yaml",
        "2026-11-26T02:00:00+00:00",
        False,
        hosts,
        "2026-11-26T02:03:20+00:00",
        standing=AccountStanding(**standing) if standing else None,
    )


def standing_with_unconfirmed() -> dict:
    return dict(
        unconfirmed=(Unconfirmed("h5", "3100005", 2),),
        expiring=(Expiring("3100006", "h6.lab.example", "198.18.0.7", "2026-12-01", 5),),
        month="2026-11",
        turnover=Decimal("120.00"),
        tier=1,
        months_under=0,
        currency="EUR",
        ordered_list_total=Decimal("8.00"),
    )
