"""gradlint's language server in a real editor: Neovim's built-in LSP client, headless, opens a
training script with a stale gradient, receives GL001 at its line, applies the quick fix, and
sees the diagnostics clear. The client is driven by tests/editors/neovim.lua (Neovim 0.7+)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import STALE

pytest.importorskip("pygls")
NVIM = shutil.which("nvim")
SCRIPT = Path(__file__).parent / "editors" / "neovim.lua"

if NVIM is None:
    if os.environ.get("CI"):  # .ci/run installs it: a missing editor must fail, not skip
        raise RuntimeError("nvim is not installed (apt-get install neovim)")
    pytest.skip("Neovim is not installed", allow_module_level=True)


def test_neovim_shows_the_finding_and_applies_its_fix(tmp_path: Path) -> None:
    train = tmp_path / "train.py"
    train.write_text(STALE)
    out = tmp_path / "events.jsonl"
    env = {
        **os.environ,
        "GRADLINT_NVIM_OUT": str(out),
        "GRADLINT_NVIM_FILE": str(train),
        "GRADLINT_NVIM_PYTHON": sys.executable,
    }
    command = [str(NVIM), "--headless", "--clean", "-u", "NONE", "-c", f"luafile {SCRIPT}"]
    done = subprocess.run(
        command,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        stdin=subprocess.DEVNULL,
    )
    events = {e["event"]: e["value"] for e in map(json.loads, out.read_text().splitlines())}
    assert "error" not in events, events["error"] + done.stderr
    (finding,) = events["diagnostics"]
    assert (finding["code"], finding["line"], finding["col"]) == ("GL001", 7, 5)
    assert "opt.zero_grad()" in finding["message"]
    assert any("opt.zero_grad()" in title for title in events["actions"]), events["actions"]
    after = events["after fix"]
    assert after["cleared"], after
    assert "\n".join(after["text"]) + "\n" == STALE.replace(
        "for x, y in batches:\n", "for x, y in batches:\n    opt.zero_grad()\n"
    )
