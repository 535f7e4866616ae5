"""The partner account emulator: ISPsystem's BILLmanager license API, as real clients see it.

A real HTTP server (`python -m agent.lab.partner --listen HOST:PORT --state-dir DIR`, started by
`ispagent lab up`) speaking the calls, parameters, encodings and reply shapes the public clients of
the API use (Upmind, ISPsystem's WHMCS module, JBS, HostBill, ipchanger; facts §8):

- `server`: HTTP (request styles, strict body reading, deadlines, the API, licctl and admin paths);
- `api`: one handler per operation of agent/partner/operations.py;
- `rules`: errors, value checks, tariffs and prices; `store`: accounts and licenses in SQLite;
- `rendering`: replies as `out=xml|json|bjson|text`, errors with HTTP 200 in the body;
- `faults`: the lab's fault profiles (latency, 5xx, resets, lost answers, late keys, 429);
- `extensions`: plug-ins that see each call first and add admin routes (test harnesses use them).

A paid order is "processing" until its key is issued (`key_delay`), then "active". The emulator
also answers the lab hosts' `licctl fetch` at `/licctl/fetch`.
"""

from agent.lab.partner.emulator import LAB_USER, PartnerEmulator
from agent.lab.partner.extensions import EmulatorExtension
from agent.lab.partner.rules import TARIFFS, ApiError, Tariff

__all__ = ["LAB_USER", "TARIFFS", "ApiError", "EmulatorExtension", "PartnerEmulator", "Tariff"]
