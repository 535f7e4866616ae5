"""What ISPmanager 6 is sold and shipped as: editions, license periods, installer releases.

The one place these lists are written: the inventory checks, the install settings, the partner
account, the ledger, program.yaml and the command line all take them from here.
"""

from __future__ import annotations

from typing import Literal, get_args

Edition = Literal["lite", "pro", "host", "business"]  # the panels of the reseller program (§2)
Period = Literal["monthly", "annual"]  # §3
# Any --release outside the installer's own list makes it switch, without a word, to ISPsystem's
# internal developer repository. We accept only what a partner should install.
Release = Literal["stable", "beta"]

EDITIONS: tuple[Edition, ...] = get_args(Edition)
PERIODS: tuple[Period, ...] = get_args(Period)
RELEASES: tuple[Release, ...] = get_args(Release)
