"""Which code produced a run: git commit and dirty flag, package versions, Python, host.

Git is asked about the checkout holding this package (not the current directory). Anything that cannot
be known is null, never a guess: no `git` executable, code installed outside a checkout, a repository
without commits. "Dirty" counts untracked files too (`git status --porcelain`), since a new module can
change what runs. The answer is computed once per process: the code a process runs is fixed when it is
imported, so later edits to the checkout do not describe it.
"""

from __future__ import annotations

import functools
import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("torch", "numpy", "ray", "scaling-lab")
_CODE_DIR = Path(__file__).resolve().parent


def _git(*args: str, cwd: Path) -> str | None:
    """stdout of a git command, or None when git is missing, times out or fails."""
    try:
        done = subprocess.run(("git", *args), cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_state(code_dir: str | Path = _CODE_DIR) -> dict:
    """{"git_sha": 40-hex or None, "git_dirty": bool or None} for the checkout containing code_dir."""
    code_dir = Path(code_dir)
    sha = _git("rev-parse", "--verify", "HEAD", cwd=code_dir)
    status = _git("status", "--porcelain", cwd=code_dir)
    return {"git_sha": sha or None, "git_dirty": None if status is None else bool(status)}


def package_versions(names=PACKAGES) -> dict:
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


@functools.lru_cache(maxsize=1)
def _collected() -> tuple:
    info = {**git_state(), "packages": package_versions(), "python": platform.python_version(),
            "platform": platform.platform(), "hostname": socket.gethostname()}
    return tuple(info.items())


def collect() -> dict:
    """Provenance of the running process (a fresh dict each call; computed once)."""
    info = dict(_collected())
    info["packages"] = dict(info["packages"])
    return info
