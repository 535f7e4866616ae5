"""`upload`: put a local file on the host, only when its content or mode differ."""

from __future__ import annotations

from agent.runner.context import HostContext
from agent.runner.registry import StepResult, step
from agent.stepkit.hostfiles import FileParams, ensure_file


class UploadParams(FileParams):
    """`src` names a local file (beside the playbook, in templates/ or in `source_dirs:`)."""


@step("upload", UploadParams, idempotent=True)
def upload(ctx: HostContext, params: UploadParams) -> StepResult:
    """Upload a local file (path relative to the playbook, inside its source directories) to an absolute path on the host."""
    return ensure_file(ctx, params.dest, ctx.read_local_file(params.src), params.mode)
