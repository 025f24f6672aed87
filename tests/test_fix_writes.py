"""What `--fix` writes is what the user had, plus the fix, and nothing else; `--diff` shows
what it could not do; selection ties go to `ignore`; the output format never changes which
findings are reported."""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path

from conftest import FIXTURES, CliRunner

from gradlint.cli import main
from gradlint.config import Selection, resolve

STALE = textwrap.dedent(
    """\
    import torch

    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for x, y in batches:
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
    """
)
INSERTED = "    opt.zero_grad()\n"
STALE_FIXED = STALE.replace("batches:\n", "batches:\n" + INSERTED)
DISCARDED = textwrap.dedent(
    """\
    for x, y in batches:
        net(x).sum().backward()
        optim_g.zero_grad()
        optim_g.step()
    """
)
# GL105 has no fix
UNFIXABLE = (FIXTURES / "GL105" / "two_batches_one_step_between.py").read_bytes()


def check(folder: Path, *args: str, input: bytes | None = None) -> tuple[int, bytes, str]:
    """`gradlint check` run in `folder`: exit code, standard output (bytes), standard error."""
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        result = CliRunner().invoke(main, ["check", "--no-cache", *args], input=input)
    finally:
        os.chdir(cwd)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout_bytes, result.stderr


# --- 8. select and ignore: ignore wins a tie ---------------------------------------------------


def test_ignore_wins_a_tie_on_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "stale.py").write_text(STALE)
    (tmp_path / "discarded.py").write_text(DISCARDED)
    _, out, _ = check(tmp_path, "--select", "GL001,GL002", "--ignore", "GL002", ".")
    assert set(re.findall(rb"GL\d{3}", out)) == {b"GL001"}


def test_ignore_wins_a_tie_in_the_config(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.gradlint]\nselect = ["GL001", "GL002"]\nignore = ["GL002"]\n'
    )
    (tmp_path / "stale.py").write_text(STALE)
    (tmp_path / "discarded.py").write_text(DISCARDED)
    _, out, _ = check(tmp_path, ".")
    assert set(re.findall(rb"GL\d{3}", out)) == {b"GL001"}


def test_ignore_wins_a_tie_in_extend_select() -> None:
    codes = resolve([Selection(extend_select=("GL101",), ignore=("GL101",))])
    assert "GL101" not in codes and "GL001" in codes
    codes = resolve([Selection(select=("GL9",), ignore=("GL9",))])
    assert not any(c.startswith("GL9") for c in codes)
