"""The Lambda runtime's Python (3.12) on this machine, if there is one: the layer's byte code is
compiled with it (tests/template/test_layer.py) and cold starts are measured with it (the bench)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess

PYENV_312 = "~/.pyenv/versions/3.12.*/bin/python3.12"


def runtime_python() -> str | None:
    """A python3.12 on PATH, or pyenv's; None if neither."""
    candidates = [shutil.which("python3.12"), *sorted(glob.glob(os.path.expanduser(PYENV_312)))]
    for candidate in filter(None, candidates):
        probe = subprocess.run(  # noqa: S603 - a Python found on this machine, no shell
            [candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 12))"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.stdout.strip() == "True":
            return candidate
    return None
