"""Running the `cdnstore` command as a user would, for the tests of the CLI and of `cdnstore serve`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def cdnstore(*args: str, cwd: Path, stdin: str = "", env: dict[str, str] | None = None
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cdnstore", *args], cwd=cwd, input=stdin, text=True,
                          capture_output=True, timeout=60, env={**clean_env(), **(env or {})})


def clean_env() -> dict[str, str]:
    """This environment without CDNSTORE_* variables, which would override the test's config."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CDNSTORE_")}
