"""The `gradlint` command: parse options, run the engine over files, print a report."""

from __future__ import annotations

import sys

import click

from gradlint import __version__
from gradlint.diagnostics import Diagnostic
from gradlint.discover import discover
from gradlint.engine import FileResult, Settings, lint_path, lint_source
from gradlint.report import FORMATS, format_option
from gradlint.report.full import diff
from gradlint.rules import RULES

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


def _codes(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(c.strip().upper() for c in value.replace(" ", ",").split(",") if c.strip())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gradlint")
def main() -> None:
    """gradlint: find stale and discarded gradients in PyTorch training loops."""


@main.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--select", help="Comma-separated codes or prefixes to report (default: GL).")
@click.option("--ignore", help="Comma-separated codes or prefixes not to report.")
@click.option("--fix", is_flag=True, help="Apply fixes to the files.")
@click.option("--diff", "show_diff", is_flag=True, help="Print the fixes as a diff; write nothing.")
@format_option
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when there are findings.")
@click.option("--stdin-filename", help="The name to report for source read from `-`.")
@click.option("-q", "--quiet", is_flag=True, help="Print findings only, no summary line.")
def check(
    paths: tuple[str, ...],
    select: str | None,
    ignore: str | None,
    fix: bool,
    show_diff: bool,
    output_format: str,
    exit_zero: bool,
    stdin_filename: str | None,
    quiet: bool,
) -> None:
    """Lint PATHS (files or folders; `-` reads standard input)."""
    unknown = [
        c for c in (*_codes(select), *_codes(ignore)) if not any(r.startswith(c) for r in RULES)
    ]
    if unknown:
        raise click.UsageError(f"unknown rule code or prefix: {', '.join(unknown)}")
    settings = Settings(select=_codes(select) or ("GL",), ignore=_codes(ignore))
    fixing = fix or show_diff
    with_fixes = output_format == "full"
    results: list[FileResult] = []
    for path in paths or (".",):
        if path == "-":
            name = stdin_filename or "-"
            data = sys.stdin.buffer.read()
            result = lint_source(name, data, settings, fix=fixing, with_fixes=with_fixes)
            if fix and not show_diff and result.fixed_data is not None:
                sys.stdout.buffer.write(result.fixed_data)
            results.append(result)
            continue
        for candidate in discover([path]):
            if candidate.problem is not None:
                problem = Diagnostic("GL901", candidate.path, 1, 1, candidate.problem)
                results.append(FileResult(candidate.path, [problem]))
                continue
            results.append(
                lint_path(
                    candidate.path, settings, fix=fixing, with_fixes=with_fixes, write=not show_diff
                )
            )
    diagnostics = sorted(
        (d for r in results for d in r.diagnostics if _shown(d, settings)), key=lambda d: d.sort_key
    )
    out = click.get_text_stream("stdout")
    if show_diff:
        for result in results:
            if result.fixed_text is not None:
                out.write(diff(result.path, result.text, result.fixed_text))
    elif not (fix and paths == ("-",)):
        sources = {r.path: r.text for r in results}
        out.write(FORMATS[output_format](diagnostics, sources))
    fixed = sum(r.fixes_applied for r in results)
    if not quiet and not (fix and paths == ("-",)):
        _summary(diagnostics, fixed, show_diff, results)
    if any(r.internal_error for r in results):
        sys.exit(EXIT_ERROR)
    if exit_zero:
        sys.exit(EXIT_CLEAN)
    if show_diff:
        sys.exit(EXIT_FINDINGS if any(r.fixed_text is not None for r in results) else EXIT_CLEAN)
    sys.exit(EXIT_FINDINGS if diagnostics else EXIT_CLEAN)


def _shown(diagnostic: Diagnostic, settings: Settings) -> bool:
    if diagnostic.code.startswith("GL9"):
        return not any(diagnostic.code.startswith(p) for p in settings.ignore)
    return True


def _summary(
    diagnostics: list[Diagnostic], fixed: int, show_diff: bool, results: list[FileResult]
) -> None:
    err = click.get_text_stream("stderr")
    if show_diff:
        changed = sum(1 for r in results if r.fixed_text is not None)
        err.write(f"Would fix {changed} file{'s' if changed != 1 else ''}.\n")
        return
    parts = []
    if diagnostics:
        parts.append(f"Found {len(diagnostics)} finding{'s' if len(diagnostics) != 1 else ''}")
    if fixed:
        parts.append(f"fixed {fixed}")
    if parts:
        err.write(
            ", ".join(parts) + f" in {len(results)} file{'s' if len(results) != 1 else ''}.\n"
        )
    else:
        err.write(f"All checks passed ({len(results)} file{'s' if len(results) != 1 else ''}).\n")


@main.command()
@click.argument("code")
def rule(code: str) -> None:
    """Print the documentation of rule CODE."""
    found = RULES.get(code.upper())
    if found is None:
        raise click.UsageError(f"unknown rule: {code}")
    click.echo(f"# {found.code} {found.name}\n\n{found.summary}.\n\n{found.docs}", nl=False)


@main.command()
def rules() -> None:
    """List all rules."""
    for found in RULES.values():
        fix = "fix" if found.fixable else "   "
        click.echo(f"{found.code}  {found.name:<22} {fix}  {found.summary}")


from gradlint.trace.command import trace as trace_command  # noqa: E402

main.add_command(trace_command)
