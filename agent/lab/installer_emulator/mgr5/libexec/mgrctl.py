#!/usr/bin/python3 -IS
"""Emulated COREmanager mgrctl (ispagent lab): license.info, exit, user/preset functions.

sbin/mgrctl (sh) answers the usual license.info itself and execs this for everything else, including
license files it cannot be sure to read as json does: this is the reference its answers must equal.
The real mgrctl is a native binary that starts in milliseconds: so no site (-S), no user environment
(-I), and modules imported where they are used.
"""

import os
import sys

MGR = os.environ.get("ISPMGR_EMULATOR_ROOT", "") + "/usr/local/mgr5"  # a test tree, or /
DB = f"{MGR}/etc/ispmgr.db"
LIC = f"{MGR}/etc/ispmgr.lic"
PID = f"{MGR}/var/run/ihttpd.pid"
LISTS = {"user": "users", "preset": "presets"}


def restart():
    import signal
    import subprocess
    import time

    try:
        pid = int(open(PID).read())
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if not os.path.exists(f"/proc/{pid}"):
                break
            time.sleep(0.02)
    except (OSError, ValueError):
        pass
    try:
        os.unlink(PID)
    except OSError:
        pass
    subprocess.Popen(
        [f"{MGR}/sbin/ihttpd"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    for _ in range(50):
        if os.path.exists(PID) and os.path.getsize(PID):
            break
        time.sleep(0.05)


def load():
    import json

    try:
        return json.load(open(DB))
    except (OSError, ValueError):
        return {"users": {}, "presets": {}}


def main(argv):
    manager, args = "core", []
    while argv:
        word = argv.pop(0)
        if word == "-m":
            manager = argv.pop(0)
        elif word == "-o":
            argv.pop(0)
        elif word == "-R":
            restart()
        else:
            args.append(word)
    if not args:
        return 0
    func, params = args[0], dict(a.split("=", 1) for a in args[1:] if "=" in a)
    if func == "exit":
        restart()
        return 0
    if manager != "ispmgr":
        print(f"ERROR unknown function {func} in {manager}")
        return 1
    if func == "license.info":
        import json

        try:
            lic = json.load(open(LIC))
        except (OSError, ValueError):
            print("ERROR license: no license")
            return 1
        for key in ("licid", "panel_name", "expire", "ip"):
            print(f"{key}={lic.get(key, '')}")
        print("core_info=COREmanager 6.110.0\npanel_info=ispmanager 6.110.0\nos=Debian\nwebdomain_license_limit=10")
        return 0
    kind = func.split(".")[0]
    if kind not in LISTS or func not in (kind, f"{kind}.edit", f"{kind}.delete"):
        print(f"ERROR unknown function {func}")
        return 1
    db = load()
    table = db.setdefault(LISTS[kind], {})
    if func == kind:
        for name, record in sorted(table.items()):
            print(" ".join([f"name={name}"] + [f"{k}={v}" for k, v in sorted(record.items())]))
        return 0
    name = params.get("elid") or params.get("name")
    if not name:
        print("ERROR missing name")
        return 1
    if func.endswith(".delete"):
        table.pop(name, None)
    elif params.get("sok") in ("ok", "yes"):
        record = {k: v for k, v in params.items() if k not in ("sok", "elid", "name", "passwd", "confirm")}
        if "passwd" in params:
            record["password_set"] = "yes"
        table[name] = {**table.get(name, {}), **record}
    else:
        record = table.get(name)
        if record is None:
            print(f"ERROR no {kind} {name}")
            return 1
        print("\n".join(f"{k}={v}" for k, v in sorted({"name": name, **record}.items())))
        return 0
    import json

    with open(DB + ".new", "w") as handle:
        json.dump(db, handle, indent=1, sort_keys=True)
    os.replace(DB + ".new", DB)
    return 0


sys.exit(main(sys.argv[1:]))
