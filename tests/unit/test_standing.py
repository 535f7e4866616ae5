"""The account's standing after a run: which licenses it names as expiring."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.partner.model import AccountLicense, LicenseStatus
from agent.runner.standing import EXPIRY_WINDOW_DAYS, Expiring, expiring_licenses

TODAY = date(2026, 12, 7)

_EXPIRY = st.one_of(
    st.dates(date(2026, 10, 1), date(2027, 3, 1)).map(date.isoformat),
    st.dates(date(2026, 10, 1), date(2027, 3, 1)).map(lambda day: day.isoformat() + " 23:59:59"),
    st.text(alphabet="0123456789-: T", max_size=19),  # what else an account may hold: none of it an error
)
_LICENSE = st.builds(
    AccountLicense,
    id=st.integers(1, 10_000).map(str),
    ip=st.just("198.18.0.2"),
    licname=st.just("h1.lab.example"),
    status=st.sampled_from(LicenseStatus),
    pricelist=st.just("55227"),
    edition=st.just("lite"),
    expiredate=_EXPIRY,
)


def every_license_dated(licenses: list[AccountLicense]) -> list[Expiring]:
    """The reference: each live license's date read on its own, the window's licenses sorted by date then id."""
    found = []
    for lic in licenses:
        try:
            expires = date.fromisoformat(lic.expiredate[:10])
        except ValueError:
            continue
        if lic.live and expires <= TODAY + timedelta(days=EXPIRY_WINDOW_DAYS):
            found.append(Expiring(lic.id, lic.licname, lic.ip, expires.isoformat(), (expires - TODAY).days))
    return sorted(found, key=lambda e: (e.expires, e.license_id))


@given(st.lists(_LICENSE, max_size=60))
@settings(max_examples=200, deadline=None)
def test_expiring_licenses_are_the_live_ones_dated_within_the_window_in_date_order(licenses):
    assert expiring_licenses(licenses, TODAY) == every_license_dated(licenses)
