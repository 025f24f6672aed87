"""The commands of the tools gradlint is timed against, and their versions.

Each command is the script beside this interpreter when there is one (a version manager's shim
on the PATH would add its own start-up to every run). TorchFix, and ruff if this environment
has none, is installed into a virtual environment of its own under .bench/, because TorchFix
pins an older libcst than gradlint needs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import corpus

BENCH = corpus.ROOT / ".bench"
VENV = BENCH / "venv"
TORCHFIX = "torchfix==0.7.0"
RUFF = "ruff==0.17.6"  # only installed when this environment has no ruff


def venv_tool(name: str) -> Path:
    return VENV / ("Scripts" if os.name == "nt" else "bin") / name


def ensure_venv(requirement: str, executable: str) -> Path:
    """The executable of `requirement`, installed into .bench/venv if missing."""
    path = venv_tool(executable)
    if path.exists():
        return path
    if not venv_tool("python").exists():
        print("creating .bench/venv", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    print(f"installing {requirement} into .bench/venv", file=sys.stderr)
    pip = [str(venv_tool("python")), "-m", "pip", "install", "-q", requirement]
    subprocess.run(pip, check=True)
    return path


def beside_python(name: str) -> str | None:
    return shutil.which(name, path=str(Path(sys.executable).parent))


def gradlint() -> list[str]:
    script = beside_python("gradlint")
    return [script] if script else [sys.executable, "-m", "gradlint"]


def ruff() -> list[str]:
    script = beside_python("ruff") or shutil.which("ruff")
    return [script or str(ensure_venv(RUFF, "ruff"))]


def flake8() -> list[str] | None:
    script = beside_python("flake8") or shutil.which("flake8")
    return [script] if script else None


def torchfix() -> list[str]:
    return [str(ensure_venv(TORCHFIX, "torchfix"))]


def output(command: list[str]) -> str:
    """The first line a command prints, or "?" if it fails."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError:
        return "?"
    return (done.stdout or done.stderr).strip().splitlines()[0] if done.returncode == 0 else "?"


def versions(with_torchfix: bool) -> str:
    found = [
        f"gradlint {metadata.version('torch-gradlint')} (libcst {metadata.version('libcst')})",
        output([*ruff(), "--version"]),
        output(["grep", "--version"]),
    ]
    flake8_command = flake8()
    if flake8_command is not None:
        found.append(f"flake8 {output([*flake8_command, '--version']).split()[0]}")
    if with_torchfix:
        probe = "from importlib.metadata import version; print(version('libcst'))"
        libcst = output([str(venv_tool("python")), "-c", probe])
        found.insert(1, f"torchfix {output([*torchfix(), '--version'])} (libcst {libcst})")
    return "; ".join(found)
