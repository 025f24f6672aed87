"""pytest plugin: ``pytest --gradlint-trace`` runs every test under :func:`gradlint.trace.watch`.

A test during which autograd saw a stale (GL001) or discarded (GL002) gradient fails, with the
findings listed. A test that fails on its own keeps its failure and gets the findings as an extra
report section. Only the test call is watched, not its fixtures' setup and teardown; a test
that starts a :func:`watch` of its own cannot run under the option (one watch at a time).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from gradlint.report import concise
from gradlint.trace.command import to_diagnostics
from gradlint.trace.recorder import TraceFinding

OPTION = "--gradlint-trace"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gradlint")
    group.addoption(
        OPTION,
        action="store_true",
        dest="gradlint_trace",
        default=False,
        help="Fail tests whose run shows stale (GL001) or discarded (GL002) gradients.",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("gradlint_trace"):
        from gradlint.trace.command import torch_problem

        problem = torch_problem()
        if problem is not None:
            raise pytest.UsageError(problem)


def pytest_report_header(config: pytest.Config) -> str | None:
    if config.getoption("gradlint_trace"):
        return "gradlint trace: watching gradients in every test"
    return None


def format_findings(findings: list[TraceFinding], root: str) -> str:
    return concise.render(to_diagnostics(findings, root), {}).rstrip("\n")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, None]:
    if not item.config.getoption("gradlint_trace"):
        yield
        return
    from gradlint.trace.recorder import watch

    recorder = watch()
    with recorder:
        outcome = yield
    findings = recorder.findings
    if not findings:
        return
    text = format_findings(findings, str(item.config.rootpath))
    if outcome.excinfo is not None:  # failed or skipped on its own: keep that outcome
        item.add_report_section("call", "gradlint-trace", text)
        return
    count = f"{len(findings)} gradient finding{'s' if len(findings) != 1 else ''}"
    try:
        pytest.fail(f"gradlint trace: {count}\n{text}", pytrace=False)
    except pytest.fail.Exception as exc:
        force = getattr(outcome, "force_exception", None)  # pluggy >= 1.2
        if force is None:
            raise
        force(exc)
