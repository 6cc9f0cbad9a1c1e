"""Run the Code nodes of the shipped n8n workflows with Node.js (see harness.js)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "n8n" / "src"
HARNESS = Path(__file__).with_name("harness.js")
MARKER = "// --- n8n ---"


def node_binary() -> str:
    path = shutil.which("node")
    if path is None:
        pytest.skip("Node.js is not installed")
    return path


def source(name: str) -> str:
    return (SRC / name).read_text()


def functions_of(name: str) -> str:
    """The file's code above its n8n glue: its functions, to call directly."""
    text = source(name)
    return text[: text.index(MARKER)]


def run_code(code: str, *, input=(), env=None, nodes=None, binary_store=None):
    spec = {
        "code": code,
        "input": list(input),
        "env": env or {},
        "nodes": nodes or {},
        "binary_store": binary_store or {},
    }
    done = subprocess.run(
        [node_binary(), str(HARNESS)],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    if "error" in result:
        raise JsError(result["error"])
    return result["output"]


def call(name: str, expression: str, *, prelude: str = "", **kwargs):
    """Evaluate `expression` (JavaScript) with the functions of `n8n/src/<name>` defined."""
    return run_code(prelude + functions_of(name) + f"\nreturn {expression};\n", **kwargs)


class JsError(Exception):
    pass
