"""The composite GitHub Action (action.yml): its shell steps, run here as the runner runs them,
with the `${{ ... }}` expressions the runner would substitute."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import STALE

ROOT = Path(__file__).parent.parent
ACTION = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
STEPS = {step["name"]: step for step in ACTION["runs"]["steps"]}

if shutil.which("bash") is None:
    pytest.skip("the action's steps are bash", allow_module_level=True)


def run_step(name: str, inputs: dict[str, str], cwd: Path, path: str | None = None):
    """One step as the runner runs it: `${{ inputs.X }}` and `${{ github.action_path }}` in its
    env replaced, its script run by `bash -e`."""
    step = STEPS[name]
    assert step["shell"] == "bash"
    values = {**{k: v["default"] for k, v in ACTION["inputs"].items()}, **inputs}
    env = dict(os.environ)
    for key, expression in step.get("env", {}).items():
        env[key] = re.sub(
            r"\$\{\{\s*(inputs\.(\w+)|github\.action_path)\s*\}\}",
            lambda m: values[m.group(2)] if m.group(2) else str(ROOT),
            expression,
        )
    assert "${{" not in step["run"], "expressions go through env, never into the script"
    if path is not None:
        env["PATH"] = path + os.pathsep + env["PATH"]
    return subprocess.run(
        ["bash", "-e", "-c", step["run"]], cwd=cwd, env=env, capture_output=True, text=True
    )


def _recording_python(folder: Path) -> Path:
    """A `python` that records its arguments instead of installing anything."""
    folder.mkdir()
    stub = folder / "python"
    stub.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{folder}/args"\n')
    stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
    return folder


def test_install_step_installs_this_project(tmp_path: Path) -> None:
    stubs = _recording_python(tmp_path / "bin")
    done = run_step("Install gradlint", {}, tmp_path, path=str(stubs))
    assert done.returncode == 0, done.stderr
    args = (stubs / "args").read_text().splitlines()
    assert args[:3] == ["-m", "pip", "install"] and args[-1] == str(ROOT)
    pinned = run_step("Install gradlint", {"version": "0.1.0"}, tmp_path, path=str(stubs))
    assert pinned.returncode == 0, pinned.stderr
    assert (stubs / "args").read_text().splitlines()[-1] == "torch-gradlint==0.1.0"


def test_run_step_annotates_and_fails_on_a_finding(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(STALE)
    (tmp_path / "my data").mkdir()
    (tmp_path / "my data" / "clean.py").write_text("print(1)\n")
    done = run_step("Run gradlint", {}, tmp_path)
    assert done.returncode == 1
    assert done.stdout.startswith("::error file=train.py,line=7,col=5,")
    # arguments are split as a shell splits them: quoted paths with spaces, several options
    quoted = run_step("Run gradlint", {"args": "'my data' --select GL001"}, tmp_path)
    assert quoted.returncode == 0, quoted.stdout + quoted.stderr
    assert "1 file checked" in quoted.stderr


def test_readme_shows_the_action() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "uses: gradlint/gradlint@v" in readme
