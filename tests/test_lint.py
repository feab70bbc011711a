"""The code style the project keeps: ruff (E, F, I, B, UP; line length 100) and mypy
over ``src``, ``tests``, ``bench`` and ``scripts``, as configured in pyproject.toml.
Both are installed with the ``test`` extra, so this fails (never skips) without them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, check=False,
        timeout=900,
    )


def test_ruff() -> None:
    result = run("ruff", "check", "--no-cache", "src", "tests", "bench", "scripts")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy() -> None:
    result = run("mypy", "src", "tests", "bench", "scripts")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr
