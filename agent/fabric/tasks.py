"""The shipped playbooks and steps as Fabric tasks, for a fabfile:

    # fabfile.py
    from agent.fabric.tasks import ns                     # or: from agent.fabric.tasks import install

    $ fab -S ~/.ssh/config -H web1,web2 install -i inventory.yaml
    $ fab -H web1 steps.facts -i inventory.yaml
    $ fab -H web1 playbook -p playbooks/smoke.yaml -i inventory.yaml

fab calls a task once per host, one host after another (fabric's executor): each call is a
journaled ispagent run of that one host over fabric's connection for it (group.py). For many hosts
at once, with batches, use PlaybookGroup.apply or `ispagent run`. An error of input ends in one line
on stderr and the exit status `ispagent run` would give; so does a host that failed.
"""

from __future__ import annotations

import fabric
from invoke import Collection, Task, task
from invoke.exceptions import Exit

from agent.errors import IspagentError
from agent.fabric.group import apply_playbook
from agent.runner.playbook import Playbook, playbook_from_data
from agent.runner.registry import load_steps
from agent.runner.run import EXIT_UNCONFIRMED

# The shipped playbooks that take no more than an inventory (license-only is a part of install).
PLAYBOOKS = ("install", "reprovision", "audit", "decommission", "smoke")
OPTION_HELP = {
    "inventory": "the inventory the hosts are in (their vars, sudo, known_hosts); config key ispagent.inventory",
    "state_dir": "where runs are journaled (default: as `ispagent run`)",
    "dry_run": "say what would change, change nothing",
}


def run_on(
    c: fabric.Connection,
    playbook: str | Playbook,
    inventory: str | None = None,
    state_dir: str | None = None,
    dry_run: bool = False,
) -> None:
    """Apply `playbook` to the host of `c`; Exit (one line, ispagent's exit code) unless it ended ok."""
    from agent.cli.run_output import make_progress, print_run_end

    settings = c.config.get("ispagent", {}) or {}
    progress = make_progress(quiet=False, verbose=False, show_diffs=dry_run)
    try:
        result = apply_playbook(
            [c],
            playbook,
            inventory=inventory or settings.get("inventory"),
            state_dir=state_dir or settings.get("state_dir"),
            dry_run=dry_run,
            listener=progress,
            forks=1,
        )
    except IspagentError as error:
        raise Exit(f"ispagent: {error}", code=error.exit_code) from None
    finally:
        progress.close()
    print_run_end(result, quiet=False)
    if result.exit_code == EXIT_UNCONFIRMED:
        raise Exit(
            f"ispagent: run {result.run_id}: every host ok, but the partner account has not confirmed "
            "some activations yet; the next run retries them",
            code=result.exit_code,
        )
    if result.exit_code != 0:
        raise Exit(
            f"ispagent: run {result.run_id} ended {result.status} with exit code {result.exit_code}; "
            f"to finish it: ispagent run --resume {result.run_id}",
            code=result.exit_code,
        )


def _playbook_task(name: str) -> Task:
    def body(c, inventory=None, state_dir=None, dry_run=False):
        run_on(c, name, inventory, state_dir, dry_run)

    body.__doc__ = f"Apply the shipped playbook {name}.yaml to each host."
    return Task(body, name=name, help=OPTION_HELP)


def _step_task(name: str, summary: str) -> Task:
    def body(c, inventory=None, state_dir=None, dry_run=False):
        run_on(
            c,
            playbook_from_data({"name": f"step-{name}", "steps": [name]}, name=f"step-{name}"),
            inventory,
            state_dir,
            dry_run,
        )

    body.__doc__ = f"The {name} step alone: {summary}"
    return Task(body, name=name, help=OPTION_HELP)


@task(help={"path": "the playbook file", **OPTION_HELP})
def playbook(c, path, inventory=None, state_dir=None, dry_run=False):
    """Apply the playbook file PATH to each host."""
    run_on(c, path, inventory, state_dir, dry_run)


def _step_tasks() -> list[Task]:
    """A task per step that needs no parameters and no earlier step's state (upload, template and
    shell take parameters; installer needs preflight's verdict: they go in a playbook)."""
    steps = load_steps()
    return [
        _step_task(name, kind.summary)
        for name, kind in sorted(steps.items())
        if not kind.needs and not any(field.required for field in kind.params.fields().values())
    ]


def _collection(members: list[Task], name: str | None = None) -> Collection:
    collection = Collection(name) if name else Collection()
    for member in members:
        collection.add_task(member)
    return collection


install, reprovision, audit, decommission, smoke = (_playbook_task(name) for name in PLAYBOOKS)
steps = _collection(_step_tasks(), "steps")
ns = _collection([install, reprovision, audit, decommission, smoke, playbook])
ns.add_collection(steps)

__all__: list[str] = ["audit", "decommission", "install", "ns", "playbook", "reprovision", "run_on", "smoke", "steps"]
