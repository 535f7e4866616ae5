"""A run reads each local file and compiles each template once, whatever the number of hosts:
every host gets the same bytes, and the CPU a 50-host run spent on 50 compilations is gone."""

from __future__ import annotations

import threading
import time

import jinja2
import pytest

from agent.errors import StepFailed
from agent.runner.services import RunServices
from agent.stepkit import templates
from agent.stepkit.templates import render_template


def test_a_local_file_is_read_once_per_run_and_a_problem_is_looked_at_again(tmp_path):
    services = RunServices()
    with pytest.raises(StepFailed, match="no file 'motd'"):
        services.local_file([tmp_path], "motd")
    (tmp_path / "motd").write_bytes(b"first\n")
    assert services.local_file([tmp_path], "motd") == b"first\n"
    (tmp_path / "motd").write_bytes(b"edited while the run goes on\n")
    assert services.local_file([tmp_path], "motd") == b"first\n"
    assert RunServices().local_file([tmp_path], "motd") == b"edited while the run goes on\n"  # the next run


def test_a_template_is_compiled_once_per_run_and_rendered_per_host(tmp_path, monkeypatch):
    (tmp_path / "hello.j2").write_text("host = {{ host }}\n")
    reads = []
    real = templates._LocalFileLoader.get_source
    monkeypatch.setattr(
        templates._LocalFileLoader,
        "get_source",
        lambda self, environment, name: reads.append(name) or real(self, environment, name),
    )
    services = RunServices()
    rendered = [render_template([tmp_path], "hello.j2", {"host": f"h{n}"}, services) for n in range(1, 4)]
    assert rendered == ["host = h1\n", "host = h2\n", "host = h3\n"] and reads == ["hello.j2"]
    render_template([tmp_path], "hello.j2", {"host": "h4"}, RunServices())
    assert reads == ["hello.j2", "hello.j2"]  # another run compiles it anew


def test_hosts_reaching_a_template_at_once_wait_for_its_one_compilation(tmp_path, monkeypatch):
    (tmp_path / "hello.j2").write_text("host = {{ host }}\n")
    compiled = []
    real = jinja2.Environment.compile

    def slow_compile(self, *args, **kwargs):
        compiled.append(args[1] if len(args) > 1 else kwargs.get("name"))
        time.sleep(0.05)  # while it compiles, every other host asks for it
        return real(self, *args, **kwargs)

    monkeypatch.setattr(jinja2.Environment, "compile", slow_compile)
    services, start = RunServices(), threading.Barrier(20)
    rendered: dict[int, str] = {}

    def host(n: int) -> None:
        start.wait()
        rendered[n] = render_template([tmp_path], "hello.j2", {"host": f"h{n}"}, services)

    threads = [threading.Thread(target=host, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert rendered == {n: f"host = h{n}\n" for n in range(20)}
    assert compiled == ["hello.j2"]


def test_a_missing_variable_still_names_the_template_and_line_with_a_shared_environment(tmp_path):
    (tmp_path / "t.j2").write_text("a\n{{ missing }}\n")
    services = RunServices()
    for _ in range(2):
        with pytest.raises(StepFailed, match="template t.j2, line 2: 'missing' is undefined"):
            render_template([tmp_path], "t.j2", {}, services)
