"""Groups: who belongs where (directly or through child groups), and in which order vars apply."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent.errors import did_you_mean
from agent.secrets import shown
from agent.yamlnodes import LocatedNode

# A reference to a group or host by name, with the node it was written at (for the error line).
Reference = tuple[str, LocatedNode]


@dataclass(frozen=True)
class GroupSpec:
    """One entry of `groups:` as written."""

    name: str
    vars: Mapping[str, Any]
    children: tuple[Reference, ...] = ()
    hosts: tuple[Reference, ...] = ()


@dataclass(frozen=True)
class GroupTree:
    """Resolved groups. `order` is how vars apply: parents before children, then by name."""

    order: tuple[str, ...]
    members: Mapping[str, frozenset[str]]  # group -> hosts, members of child groups included

    def groups_of(self, host: str) -> tuple[str, ...]:
        return tuple(group for group in self.order if host in self.members[group])


def resolve_groups(
    specs: Mapping[str, GroupSpec], host_groups: Mapping[str, Sequence[Reference]], hosts: Sequence[str]
) -> GroupTree:
    """Check every reference between hosts and groups, reject cycles, and compute membership.

    `host_groups` is each host's own `groups:` list; membership may be declared on either side.
    """
    _check_references(specs, host_groups, hosts)
    _reject_cycles(specs)
    direct: dict[str, set[str]] = {name: {host for host, _ in spec.hosts} for name, spec in specs.items()}
    for host, references in host_groups.items():
        for group, _ in references:
            direct[group].add(host)
    members = {name: frozenset(_members(name, specs, direct)) for name in specs}
    depth = _depths(specs)
    order = tuple(sorted(specs, key=lambda name: (depth[name], name)))
    return GroupTree(order=order, members=members)


def _check_references(
    specs: Mapping[str, GroupSpec], host_groups: Mapping[str, Sequence[Reference]], hosts: Sequence[str]
) -> None:
    for references in host_groups.values():
        for group, node in references:
            _require_known(group, node, specs, "group")
    for spec in specs.values():
        for child, node in spec.children:
            _require_known(child, node, specs, "group")
        for host, node in spec.hosts:
            _require_known(host, node, hosts, "host")


def _require_known(name: str, node: LocatedNode, known: Sequence[str] | Mapping[str, Any], kind: str) -> None:
    if name in known:
        return
    raise node.error(f"unknown {kind} {shown(name)}", did_you_mean(name, known) or f"define it under {kind}s:")


def _reject_cycles(specs: Mapping[str, GroupSpec]) -> None:
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        for child, node in specs[name].children:
            if child in path:
                cycle = " -> ".join(path[path.index(child) :] + (child,))
                raise node.error(f"group cycle {cycle}", f"remove '{child}' from the children of '{name}'")
            if child not in done:
                visit(child, path + (child,))
        done.add(name)

    for name in sorted(specs):
        if name not in done:
            visit(name, (name,))


def _members(name: str, specs: Mapping[str, GroupSpec], direct: Mapping[str, set[str]]) -> set[str]:
    found = set(direct[name])
    for child, _ in specs[name].children:
        found |= _members(child, specs, direct)
    return found


def _depths(specs: Mapping[str, GroupSpec]) -> dict[str, int]:
    """Longest distance from a top-level group: a child always sorts after every one of its parents."""
    parents: dict[str, list[str]] = {name: [] for name in specs}
    for name, spec in specs.items():
        for child, _ in spec.children:
            parents[child].append(name)
    depth: dict[str, int] = {}

    def depth_of(name: str) -> int:
        if name not in depth:
            depth[name] = 1 + max((depth_of(parent) for parent in parents[name]), default=-1)
        return depth[name]

    return {name: depth_of(name) for name in specs}
