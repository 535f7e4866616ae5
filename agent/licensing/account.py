"""Changes to a license of the partner account, each recording in the ledger what it does to billing.

A renewal is billed as a renewal, a deletion as a deactivation (program §5): whoever
calls these, the `licenses` command or a cron job, turnover sees the same. The license is read
first, so a failure to read happens before money moves; when the account's answer to a renewal or
deletion is lost, the license is read again to learn whether it happened (neither call is safe to
repeat blindly: a second renewal is paid twice).
"""

from __future__ import annotations

from agent.errors import PartnerNotFound, PartnerTransient
from agent.ledger import BillingEvent, LicenseLedger
from agent.ledger.database import utc_today
from agent.partner.client import PartnerClient
from agent.partner.model import AccountLicense, LicenseStatus

SOURCE = "cli"  # billing_events.source of changes made outside a run


def renew(client: PartnerClient, ledger: LicenseLedger, license_id: str, period: str, *, on: str | None = None) -> str:
    """Prolong a license by `period` (monthly|annual), paid from the account balance; bill the renewal
    on `on` (YYYY-MM-DD, default today, UTC). Returns the new expiry date."""
    before = client.get(license_id)
    try:
        until = client.renew(license_id, period)
    except PartnerTransient as error:
        until = _renewed_after_all(client, before, error)
    ledger.billing.record(BillingEvent(on or utc_today(), "renewal", before.id, before.edition, period), source=SOURCE)
    return until


def delete(client: PartnerClient, ledger: LicenseLedger, license_id: str, *, on: str | None = None) -> None:
    """Delete a license from the account (not reversible); bill its deactivation and let the ledger's
    host record go."""
    before = client.get(license_id)
    try:
        client.delete(license_id)
    except PartnerTransient as error:
        _deleted_after_all(client, license_id, error)
    ledger.billing.record(
        BillingEvent(on or utc_today(), "deactivation", before.id, before.edition, None), source=SOURCE
    )
    ledger.forget_license(before.id, "deleted from the partner account")


def change_ip(client: PartnerClient, license_id: str, ip: str) -> None:
    """Move a license to another server IP (the account may allow this once a month). Billing is unchanged."""
    client.set_ip_and_name(license_id, ip=ip)


def change_tariff(client: PartnerClient, license_id: str, edition: str, period: str = "monthly") -> None:
    """Switch a license to another edition. The ledger records nothing: the program's terms do not say how it is billed."""
    client.change_tariff(license_id, edition, period)


def suspend(client: PartnerClient, license_id: str) -> None:
    """Suspend a license (the panel blocks web login, data kept). Billing is unchanged."""
    client.suspend(license_id)


def resume(client: PartnerClient, license_id: str) -> None:
    """Resume a suspended license. Billing is unchanged."""
    client.resume(license_id)


def _renewed_after_all(client: PartnerClient, before: AccountLicense, error: PartnerTransient) -> str:
    """The new expiry date if the renewal whose answer was lost went through; raises if it did not, or if unknown."""
    try:
        after = client.get(before.id)
    except PartnerTransient:
        raise PartnerTransient(
            f"{error}; whether license {before.id} was renewed is unknown: check its expiry "
            f"(`ispagent licenses show {before.id}`) before renewing again"
        ) from None
    if after.expiredate and after.expiredate != before.expiredate:
        return after.expiredate
    raise PartnerTransient(
        f"{error}; license {before.id} still expires {before.expiredate or 'as before'}: not renewed, try again"
    ) from None


def _deleted_after_all(client: PartnerClient, license_id: str, error: PartnerTransient) -> None:
    """Returns if the deletion whose answer was lost went through; raises if it did not, or if unknown."""
    try:
        if client.get(license_id).status == LicenseStatus.DELETED:
            return
    except PartnerNotFound:
        return
    except PartnerTransient:
        raise PartnerTransient(
            f"{error}; whether license {license_id} was deleted is unknown: check "
            f"(`ispagent licenses show {license_id}`) before deleting again"
        ) from None
    raise PartnerTransient(f"{error}; license {license_id} is still in the account: not deleted, try again") from None
