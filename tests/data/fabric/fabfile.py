"""A team's fabfile that drives ispagent through ispagent[fabric] (tests/lab/test_fabric_on_lab.py runs it).

    fab -r tests/data/fabric -S LAB/ssh_config rollout --names h1,h2 --inventory LAB/inventory.yaml \
        --state-dir DIR --report-json FILE
    fab -r tests/data/fabric -S LAB/ssh_config -H h5,h6 smoke --inventory LAB/inventory.yaml

`rollout` applies playbooks/install.yaml to the named hosts at once, over a fabric ThreadingGroup
built from the team's own ssh_config (PlaybookGroup); the shipped tasks (install, smoke, steps.*)
come from agent.fabric.tasks, one host after another.
"""

from pathlib import Path

from invoke import Collection, task
from invoke.exceptions import Exit

from agent.fabric import PlaybookGroup
from agent.fabric.tasks import ns as shipped
from agent.runner.report import write_report

INSTALL = Path(__file__).resolve().parents[3] / "playbooks" / "install.yaml"


@task
def rollout(c, names, inventory, state_dir, report_json):
    """Install ISPmanager on the hosts NAMES (comma-separated) at once."""
    group = PlaybookGroup(*names.split(","), config=c.config)
    try:
        result = group.apply(INSTALL, inventory=inventory, state_dir=state_dir, forks=10)
    finally:
        group.close()
    write_report(Path(report_json), result)
    if result.exit_code:
        raise Exit(f"run {result.run_id}: exit code {result.exit_code}", code=result.exit_code)


ns = Collection(rollout)
for name in shipped.task_names:
    if "." not in name:
        ns.add_task(shipped[name])
ns.add_collection(shipped.collections["steps"])
