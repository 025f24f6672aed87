"""`gradlint trace`, `python -m gradlint.trace` and the pytest plugin: tiny CPU runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import CliRunner

from gradlint.cli import main

pytest_plugins = ["pytester"]

SRC = str(Path(__file__).resolve().parents[1] / "src")
CONCISE = re.compile(r"^(?P<path>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<code>GL\d{3}) (?P<msg>.+)$")

HEADER = """\
import sys
import torch
model = torch.nn.Linear(4, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
x, y = torch.randn(8, 4), torch.randn(8, 1)
"""
STALE_LOOP = """
for i in range(3):
    loss = ((model(x) - y) ** 2).mean()
    loss.backward()  # <bw>
    opt.step()
"""
CLEAN_LOOP = """
for i in range(3):
    opt.zero_grad()
    loss = ((model(x) - y) ** 2).mean()
    loss.backward()
    opt.step()
"""


def _write(tmp_path: Path, body: str, name: str = "train.py") -> tuple[Path, str]:
    src = HEADER + textwrap.dedent(body)
    path = tmp_path / name
    path.write_text(src)
    return path, src


def _line(src: str, marker: str) -> int:
    hits = [i for i, text in enumerate(src.splitlines(), 1) if text.rstrip().endswith(marker)]
    assert len(hits) == 1, (marker, hits)
    return hits[0]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["trace", *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_stale_loop_reports_gl001_at_backward(project: Path) -> None:
    pytest.importorskip("torch")
    _, src = _write(project, STALE_LOOP)
    code, out, _ = _invoke("train.py")
    assert code == 1
    [line] = out.splitlines()
    match = CONCISE.match(line)
    assert match, line
    assert (match["path"], int(match["line"]), match["col"], match["code"]) == (
        "train.py",
        _line(src, "# <bw>"),
        "5",
        "GL001",
    )
    assert match["msg"].endswith("(seen in 2 steps)")


def test_full_format_shows_the_line(project: Path) -> None:
    pytest.importorskip("torch")
    _write(project, STALE_LOOP)
    code, out, _ = _invoke("--format", "full", "train.py")
    assert code == 1
    assert "loss.backward()  # <bw>" in out
    assert out.startswith("train.py:")


def test_clean_loop_exits_zero_without_output(project: Path) -> None:
    pytest.importorskip("torch")
    _write(project, CLEAN_LOOP)
    code, out, err = _invoke("train.py")
    assert (code, out, err) == (0, "", "")


def test_script_args_and_exit_code_pass_through(project: Path) -> None:
    pytest.importorskip("torch")
    _write(
        project,
        """
        print(sys.argv[1:])
        sys.exit(int(sys.argv[-1]))
        """,
    )
    # options after the script belong to the script, even ones `gradlint trace` knows
    code, out, _ = _invoke("train.py", "--format", "full", "-x", "3")
    assert code == 3
    assert out.splitlines() == ["['--format', 'full', '-x', '3']"]


def test_findings_win_over_the_script_exit_code(project: Path) -> None:
    pytest.importorskip("torch")
    _write(project, STALE_LOOP + "sys.exit(0)\n")
    code, out, _ = _invoke("train.py")
    assert code == 1 and "GL001" in out


def test_crash_prints_traceback_and_keeps_findings(project: Path) -> None:
    pytest.importorskip("torch")
    _, src = _write(
        project,
        """
        for i in range(4):
            loss = ((model(x) - y) ** 2).mean()
            loss.backward()  # <bw>
            opt.step()
            if i == 2:
                raise ValueError(f"boom {i}")
        """,
    )
    code, out, err = _invoke("train.py")
    assert code == 1
    assert out.count("\n") == 1
    assert f"train.py:{_line(src, '# <bw>')}:5: GL001 " in out
    assert "(seen in 2 steps)" in out
    assert err.startswith("Traceback (most recent call last):")
    assert "ValueError: boom 2" in err and "runpy" not in err


def test_crash_without_findings_exits_with_one(project: Path) -> None:
    pytest.importorskip("torch")
    _write(project, "raise KeyError('missing')\n")
    code, out, err = _invoke("train.py")
    assert (code, out) == (1, "")
    assert "KeyError: 'missing'" in err


def test_max_steps_stops_the_script(project: Path) -> None:
    pytest.importorskip("torch")
    _write(project, STALE_LOOP.replace("range(3)", "range(1000)") + "raise SystemExit(5)\n")
    code, out, err = _invoke("--max-steps", "2", "train.py")
    assert code == 1
    assert "(seen in 1 step)" in out
    assert "stopped the script after 2 updates" in err
    code, out, err = _invoke("--max-steps", "1", "train.py")
    assert "stopped the script after 1 update." in err


def test_missing_torch_exits_two_with_install_hint(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(project, CLEAN_LOOP)
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    code, out, err = _invoke("train.py")
    assert (code, out) == (2, "")
    assert "pip install 'torch-gradlint[trace]'" in err


def test_missing_script_is_a_usage_error(project: Path) -> None:
    code, _, err = _invoke("nowhere.py")
    assert code == 2 and "nowhere.py" in err


def test_python_dash_m(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    _, src = _write(tmp_path, STALE_LOOP + "print(sys.argv[1:])\n")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "gradlint.trace", "train.py", "--seed", "1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.splitlines()[0] == "['--seed', '1']"
    assert proc.stdout.splitlines()[1].startswith(f"train.py:{_line(src, '# <bw>')}:5: GL001 ")


# --------------------------------------------------------------------------- pytest plugin

# the outer run may have loaded the plugin already (entry point): its module cannot be rewritten
PLUGIN_ARGS = (
    "-p",
    "no:gradlint-trace",
    "-p",
    "gradlint.trace.pytest_plugin",
    "-W",
    "ignore::pytest.PytestAssertRewriteWarning",
)
TEST_MODULE = """
import torch

def _setup():
    model = torch.nn.Linear(4, 1)
    return model, torch.optim.SGD(model.parameters(), lr=0.1), torch.randn(8, 4)

def test_stale():
    model, opt, x = _setup()
    for _ in range(3):
        model(x).sum().backward()  # <bw>
        opt.step()

def test_clean():
    model, opt, x = _setup()
    for _ in range(3):
        opt.zero_grad()
        model(x).sum().backward()
        opt.step()

def test_fails_on_its_own():
    model, opt, x = _setup()
    for _ in range(3):
        model(x).sum().backward()
        opt.step()
    assert False, "own failure"
"""


def test_pytest_plugin_fails_stale_test_and_passes_clean_one(pytester: pytest.Pytester) -> None:
    pytest.importorskip("torch")
    pytester.makepyfile(test_loops=TEST_MODULE)
    bw = _line(TEST_MODULE.lstrip("\n"), "# <bw>")
    result = pytester.runpytest(*PLUGIN_ARGS, "--gradlint-trace", "-rA")
    result.assert_outcomes(passed=1, failed=2, warnings=0)
    result.stdout.fnmatch_lines(
        [
            "*gradlint trace: 1 gradient finding",
            f"test_loops.py:{bw}:9: GL001 stale gradients*(seen in 2 steps)",
        ]
    )
    result.stdout.fnmatch_lines(["*own failure*", "*gradlint-trace*", "test_loops.py:*GL001*"])
    assert "PASSED test_loops.py::test_clean" in result.stdout.str()


def test_pytest_plugin_is_off_without_the_option(pytester: pytest.Pytester) -> None:
    pytest.importorskip("torch")
    pytester.makepyfile(test_loops=TEST_MODULE)
    result = pytester.runpytest(*PLUGIN_ARGS)
    result.assert_outcomes(passed=2, failed=1)
    assert "GL001" not in result.stdout.str()
