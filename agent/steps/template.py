"""`template`: render a Jinja2 template with the host's vars and facts, put it on the host if it differs."""

from __future__ import annotations

from agent.runner.context import HostContext
from agent.runner.registry import StepResult, step
from agent.stepkit.hostfiles import FileParams, ensure_file


class TemplateParams(FileParams):
    """Like upload's, but `src` names a Jinja2 template (beside the playbook or in templates/)."""


@step("template", TemplateParams, idempotent=True)
def template(ctx: HostContext, params: TemplateParams) -> StepResult:
    """Render a Jinja2 template (vars, facts, host) and upload it when the result differs."""
    from agent.stepkit.templates import render_template  # jinja2: at the first render, not before the run dials

    text = render_template(ctx.source_dirs, params.src, ctx.template_vars(), ctx.services)
    return ensure_file(ctx, params.dest, text.encode(), params.mode, with_diff=True)
