"""Static security analysis of the shipped code, run with the suite so CI enforces it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_bandit_finds_nothing() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bandit",
            "-q",
            "-r",
            "-f",
            "json",
            "flask_ucloud_2fa",
            "example_app",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    report = json.loads(result.stdout)
    assert report["results"] == [], json.dumps(report["results"], indent=2)
    assert report["errors"] == []
