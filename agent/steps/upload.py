"""`upload`: put a local file on the host, only when its content or mode differ."""

from __future__ import annotations

from pydantic import field_validator

from agent.runner.context import HostContext
from agent.stepkit.hostfiles import check_remote_path, ensure_file, parse_mode
from agent.runner.registry import StepParams, StepResult, step


class UploadParams(StepParams):
    src: str
    dest: str
    mode: int = 0o644

    _mode = field_validator("mode", mode="before")(parse_mode)
    _dest = field_validator("dest")(check_remote_path)

    def local_files(self) -> dict[str, str]:
        return {"src": self.src}


@step("upload", UploadParams)
def upload(ctx: HostContext, params: UploadParams) -> StepResult:
    """Upload a local file (path relative to the playbook, inside its source directories) to an absolute path on the host."""
    return ensure_file(ctx, params.dest, ctx.read_local_file(params.src), params.mode)
