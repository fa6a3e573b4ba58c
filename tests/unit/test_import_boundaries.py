"""The folders' import rules from ARCHITECTURE.md, checked on the source.

``edge`` imports only itself and ``proto``; ``cloud`` imports from ``edge`` only its
shared runtime package, ``edge.runtime``: what reads, verifies and runs a bundle
exactly as a node does, the MQTT link both sides speak, and the error tree they
raise. Camera, server, outbox and publisher stay the node's own, free to change
without touching the cloud; the runtime itself imports nothing else of the node.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED_RUNTIME = "edge.runtime"


def _is_shared_runtime(module: str) -> bool:
    return module == SHARED_RUNTIME or module.startswith(SHARED_RUNTIME + ".")


def _imports(package: str) -> dict[str, set[str]]:
    """Modules imported by each file of a package, absolute names only."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize("package", ["edge", "proto"])
def test_edge_and_proto_never_import_cloud(package: str) -> None:
    offenders = {
        path: sorted(n for n in names if n == "cloud" or n.startswith("cloud."))
        for path, names in _imports(package).items()
    }
    assert not {path: names for path, names in offenders.items() if names}


def test_proto_imports_nothing_of_ours() -> None:
    ours = ("edge", "cloud")
    offenders = {
        path: sorted(n for n in names if n.split(".")[0] in ours)
        for path, names in _imports("proto").items()
    }
    assert not {path: names for path, names in offenders.items() if names}


def test_cloud_takes_only_the_shared_runtime_from_edge() -> None:
    offenders = {
        path: sorted(n for n in names if n.split(".")[0] == "edge" and not _is_shared_runtime(n))
        for path, names in _imports("cloud").items()
    }
    assert not {path: names for path, names in offenders.items() if names}


def test_the_shared_runtime_stands_alone() -> None:
    """What the cloud takes must not drag the node's camera, server or outbox along."""
    offenders = {
        path: sorted(n for n in names if n.split(".")[0] == "edge" and not _is_shared_runtime(n))
        for path, names in _imports("edge/runtime").items()
    }
    assert not {path: names for path, names in offenders.items() if names}


def test_cloud_names_one_errors_module() -> None:
    """Cloud code raises and catches through ``cloud.errors``, which re-exports the shared ones."""
    offenders = sorted(
        path
        for path, names in _imports("cloud").items()
        if "edge.runtime.errors" in names and path != "cloud/errors.py"
    )
    assert not offenders


def test_the_rule_has_teeth() -> None:
    """The walker sees imports inside functions too (cloud's CLI imports lazily)."""
    names = set().union(*_imports("cloud").values())
    assert "edge.runtime.errors" in names
    assert "edge.runtime.bundle" in names
