"""The license a host needs, from its settings and what preflight and facts found."""

from __future__ import annotations

from agent.licensing.plan import WantedLicense
from agent.panel.hostprobe import PREFLIGHT
from agent.runner.context import HostContext


def wanted_license(ctx: HostContext) -> WantedLicense:
    """Edition, period, IP and name of the license this host needs."""
    preflight, wanted = ctx.state.get(PREFLIGHT), ctx.settings.license
    ip = (preflight.primary_ipv4 if preflight else None) or ctx.facts.get("primary_ipv4") or ctx.host.address
    fqdn = wanted.fqdn or ctx.facts.get("fqdn") or ctx.host.name
    return WantedLicense(ctx.host.name, str(ip), str(fqdn), wanted.edition, wanted.period)
