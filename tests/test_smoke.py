"""gradlint over real code it has never seen (torch's sources and this environment's packages):
no internal error, whatever it finds. Slow (minutes); deselect with `-m "not smoke"`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig

import pytest

pytestmark = pytest.mark.smoke


def test_no_internal_error_on_installed_packages() -> None:
    torch = pytest.importorskip("torch")
    roots = sorted({os.path.dirname(torch.__file__), sysconfig.get_paths()["purelib"]})
    files = len(
        {
            os.path.realpath(os.path.join(folder, name))
            for root in roots
            for folder, _, names in os.walk(root)
            for name in names
            if name.endswith(".py")
        }
    )
    command = [sys.executable, "-m", "gradlint", "check", "--exit-zero", "-q", "--no-cache"]
    command += ["--jobs", "2", "--format", "json", *roots]
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    findings = json.loads(done.stdout or "[]")
    internal = sorted({f["path"] for f in findings if f["code"] == "GL999"})
    by_code: dict[str, int] = {}
    for finding in findings:
        by_code[finding["code"]] = by_code.get(finding["code"], 0) + 1
    summary = f"{files} .py files, {len(findings)} findings {dict(sorted(by_code.items()))}"
    print(summary)
    assert done.returncode == 0, f"{summary}\n{done.stderr[-2000:]}"
    assert internal == [], f"{summary}; GL999 in {internal}"
