"""Paddler's own Python client drives our balancer unchanged (acceptance bullet 9).

``paddler-client`` 4.0.0 (PyPI) requires ``websockets<16``, which conflicts with this project's
environment, so it gets a virtualenv of its own: created on first use under
``.venv/paddler-client-venv`` with ``python -m venv`` and ``pip install`` and reused afterwards.
A real balancer and a real agent serve it; ``paddler_client_driver.py`` runs in that virtualenv
and performs the checks. There is no skip: without the client this acceptance is not proven.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.cluster import Cluster

pytestmark = pytest.mark.slow

CLIENT_REQUIREMENT = "paddler-client==4.0.0"
ROOT = Path(__file__).resolve().parents[2]
CLIENT_VENV = ROOT / ".venv" / "paddler-client-venv"
DRIVER = Path(__file__).with_name("paddler_client_driver.py")
CHECKS = [
    "management health",
    "agents",
    "agents stream",
    "desired state round trip",
    "buffered requests",
    "metrics",
    "agent proxy routes",
    "inference health",
    "conversation history over HTTP",
    "conversation history over the inference socket",
    "raw prompt over the inference socket",
    "embeddings",
]


def client_python() -> Path:
    """The client's interpreter, creating its virtualenv (atomically) when it is missing."""
    python = CLIENT_VENV / "bin" / "python"
    probe = [str(python), "-c", "import paddler_client"]
    if python.exists() and subprocess.run(probe, check=False).returncode == 0:
        return python
    building = CLIENT_VENV.with_name(f"{CLIENT_VENV.name}.building-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(building)], check=True)
    subprocess.run(
        [str(building / "bin" / "python"), "-m", "pip", "install", "--quiet", CLIENT_REQUIREMENT],
        check=True,
        timeout=600,
    )
    shutil.rmtree(CLIENT_VENV, ignore_errors=True)
    with contextlib.suppress(OSError):  # another run may have finished first: use either
        building.rename(CLIENT_VENV)
    shutil.rmtree(building, ignore_errors=True)
    return python


def test_paddlers_python_client_drives_our_balancer(
    make_cluster: Callable[[str], Cluster], tmp_path: Path
) -> None:
    python = client_python()
    cluster = make_cluster("paddler-client").start(agents=1, slots=2, names=["client-agent"])
    out, err = tmp_path / "driver.out", tmp_path / "driver.err"

    with out.open("w") as stdout, err.open("w") as stderr:
        finished = subprocess.run(
            [
                str(python),
                str(DRIVER),
                cluster.b.inference_url,
                cluster.b.management_url,
                "client-agent",
                "2",
            ],
            stdout=stdout,
            stderr=stderr,
            timeout=180,
            check=False,
            # The client's own environment only: nothing of this project on its path.
            env={"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "")},
            cwd=tmp_path,
        )

    assert finished.returncode == 0, err.read_text()
    assert json.loads(out.read_text()) == CHECKS
