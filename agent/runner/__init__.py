"""The runner: drives a playbook over many hosts at once, journaled and resumable (see run.py)."""
