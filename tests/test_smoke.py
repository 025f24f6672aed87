"""gradlint over real code it has never seen (torch's sources and this environment's packages):
no internal error, whatever it finds. Slow (minutes); deselect with `-m "not smoke"`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig

import pytest

pytestmark = [pytest.mark.smoke, pytest.mark.slow]
_LINE = re.compile(r"(?P<path>.+?):(?:cell \d+:)?\d+:\d+: (?P<code>GL\d{3}) ")


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
    # concise output: the fix-carrying formats (json, sarif, full) verify every finding's fix by
    # analysing the file again, which on torch's largest test files costs minutes
    command += ["--jobs", "2", *roots]
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    findings = [_LINE.match(line) for line in done.stdout.splitlines()]
    assert all(findings), done.stdout[-2000:]
    internal = sorted({f.group("path") for f in findings if f and f.group("code") == "GL999"})
    by_code: dict[str, int] = {}
    for finding in findings:
        if finding:
            by_code[finding.group("code")] = by_code.get(finding.group("code"), 0) + 1
    summary = f"{files} .py files, {len(findings)} findings {dict(sorted(by_code.items()))}"
    print(summary)
    assert done.returncode == 0, f"{summary}\n{done.stderr[-2000:]}"
    assert internal == [], f"{summary}; GL999 in {internal}"
