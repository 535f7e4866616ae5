"""The runner: drives a playbook over many hosts at once, journaled and resumable."""

from agent.runner.run import RunOptions, RunResult, resume_run, start_run

__all__ = ["RunOptions", "RunResult", "resume_run", "start_run"]
