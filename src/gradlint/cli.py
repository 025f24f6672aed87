"""The `gradlint` command: parse options, run the engine over files, print a report."""

from __future__ import annotations

import importlib
import math
import os
import sys
from collections.abc import Callable
from contextlib import suppress
from dataclasses import replace
from typing import Any, TypeVar

import click

from gradlint import __version__
from gradlint.batch import (
    DEFAULT_TIMEOUT,
    MAX_JOBS_PER_CORE,
    Options,
    Task,
    default_jobs,
    lint_data,
    lint_files,
    max_jobs,
)
from gradlint.cache import DEFAULT_DIR, Cache, NotACache
from gradlint.config import (
    INPUT_PROBLEMS,
    Config,
    ConfigError,
    Selection,
    load_config,
    unknown_codes,
)
from gradlint.diagnostics import Diagnostic, FileResult
from gradlint.discover import discover
from gradlint.limits import MAX_TIMEOUT
from gradlint.report import format_option, render, summary
from gradlint.report.full import diff
from gradlint.report.options import DEFAULT_DOCS_URL, ReportOptions
from gradlint.report.progress import Progress
from gradlint.report.streams import OutputError, write_err, write_out
from gradlint.rules.catalogue import CATALOGUE
from gradlint.source import keep_untouched

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


def _codes(values: tuple[str, ...]) -> tuple[str, ...]:
    """Codes from options given once or repeated, each comma- or space-separated."""
    joined = ",".join(values).replace(" ", ",")
    return tuple(c.strip().upper() for c in joined.split(",") if c.strip())


# `--cache-dir`, shared by `check` (which fills the cache) and `clean` (which removes it)
cache_dir_option = click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    envvar="GRADLINT_CACHE_DIR",
    default=DEFAULT_DIR,
    show_default=True,
    help="Where findings of unchanged files are kept (env: GRADLINT_CACHE_DIR).",
)


F = TypeVar("F", bound=Callable[..., Any])

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C


class _Commands(click.Group):
    """Ctrl-C exits 130, as for any command a shell runs; a report that cannot be written
    (/dev/full, a closed stdout) is one line on stderr and exit 2, not a traceback.

    `trace` and `server` are imported only when run (or listed in a help page): other commands
    must not pay for the runtime tracer and the language server at start-up."""

    # name -> (module:attribute, its one-line help for `gradlint --help`; a test compares it)
    lazy = {
        "trace": (
            "gradlint.trace.command:trace",
            "Run SCRIPT with ARGS (as `python SCRIPT ARGS`) and report the stale (GL001) and "
            "discarded (GL002) gradients that autograd saw.",
        ),
        "server": (
            "gradlint.server:server",
            "Run the language server on standard input and output (for editors).",
        ),
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.lazy:
            return super().get_command(ctx, cmd_name)
        module, _, name = self.lazy[cmd_name][0].partition(":")
        command = getattr(importlib.import_module(module), name)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of `--help`, without importing the lazy commands for their help:
        a stand-in command with the same help text gives click's own short form of it."""
        rows = []
        for name in self.list_commands(ctx):
            if name in self.lazy:
                command: click.Command | None = click.Command(name, help=self.lazy[name][1])
            else:
                command = super().get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(formatter.width - 6 - len(name))))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            sys.exit(EXIT_INTERRUPTED)
        except OutputError as error:
            with suppress(OutputError):  # stderr may be gone too
                write_err(f"gradlint: cannot write the report: {error}\n")
            sys.exit(EXIT_ERROR)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gradlint")
def main() -> None:
    """gradlint: find stale and discarded gradients in PyTorch training loops."""


def _timeout(ctx: click.Context, param: click.Parameter, value: float) -> float | None:
    """Seconds, or None for no limit (0, inf, or more than anyone waits)."""
    if math.isnan(value):
        raise click.BadParameter("must be a number of seconds, not nan")
    return None if value == 0 or value > MAX_TIMEOUT else value


def timeout_option(help: str) -> Callable[[F], F]:
    """`--timeout SECONDS` (default 30; 0 for no limit), given to the command as seconds or
    None: `check`'s per file, the language server's per lint of a document."""
    return click.option(
        "--timeout",
        type=click.FloatRange(min=0),
        callback=_timeout,
        default=DEFAULT_TIMEOUT,
        show_default=True,
        help=help,
    )


@main.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option(
    "--select",
    multiple=True,
    help="Codes or prefixes to report (default: GL); replaces the config's selection.",
)
@click.option("--extend-select", multiple=True, help="Codes or prefixes to report in addition.")
@click.option("--ignore", multiple=True, help="Codes or prefixes not to report.")
@click.option("--fix", is_flag=True, help="Apply fixes to the files.")
@click.option("--diff", "show_diff", is_flag=True, help="Print the fixes as a diff; write nothing.")
@format_option
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when there are findings.")
@click.option("--stdin-filename", help="The name to report for source read from `-`.")
@click.option("-q", "--quiet", is_flag=True, help="Print findings only, no summary line.")
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False),
    help="Read [tool.gradlint] from this pyproject.toml instead of the nearest one.",
)
@click.option("--isolated", is_flag=True, help="Ignore all configuration files.")
@click.option(
    "--force-exclude",
    is_flag=True,
    help="Skip excluded paths even when given by name (for pre-commit and editors).",
)
@click.option(
    "--unsafe-fixes",
    is_flag=True,
    help="With --fix or --diff, also apply fixes that may change behaviour.",
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=0),
    default=0,
    help=f"Worker processes (default 0: one per core; at most {MAX_JOBS_PER_CORE} per core).",
)
@timeout_option("Seconds to spend on one file before reporting it (GL902); 0 for no limit.")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the cache.")
@cache_dir_option
@click.option(
    "--exclude",
    multiple=True,
    help="Globs of paths to skip, replacing the config's `exclude` (comma-separated).",
)
@click.option(
    "--extend-exclude", multiple=True, help="Globs of paths to skip in addition (comma-separated)."
)
@click.option(
    "--statistics",
    is_flag=True,
    help="Print the number of findings of each rule instead of the findings.",
)
@click.option(
    "-o",
    "--output-file",
    type=click.Path(dir_okay=False),
    help="Write the report to this file instead of standard output.",
)
@click.option(
    "--show-fixes", is_flag=True, help="With --fix, list the fixes applied, by file and rule."
)
@click.option(
    "--add-noqa",
    is_flag=True,
    help="Add `# noqa: CODE` to each line with a finding, keeping codes already there.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show how many files are done on stderr during long runs "
    "(default: on a terminal, unless --quiet).",
)
@click.option(
    "--exit-non-zero-on-fix",
    is_flag=True,
    help="Exit 1 when --fix changed a file, even if no finding remains.",
)
@click.option(
    "--docs-url",
    envvar="GRADLINT_DOCS_URL",
    default=DEFAULT_DOCS_URL,
    help="Where the rule pages are: the `url` of json and sarif findings (env: GRADLINT_DOCS_URL).",
)
def check(
    paths: tuple[str, ...],
    select: tuple[str, ...],
    extend_select: tuple[str, ...],
    ignore: tuple[str, ...],
    fix: bool,
    show_diff: bool,
    output_format: str,
    exit_zero: bool,
    stdin_filename: str | None,
    quiet: bool,
    config_file: str | None,
    isolated: bool,
    force_exclude: bool,
    unsafe_fixes: bool,
    jobs: int,
    timeout: float | None,
    no_cache: bool,
    cache_dir: str,
    exclude: tuple[str, ...],
    extend_exclude: tuple[str, ...],
    statistics: bool,
    output_file: str | None,
    show_fixes: bool,
    add_noqa: bool,
    exit_non_zero_on_fix: bool,
    progress: bool | None,
    docs_url: str,
) -> None:
    """Lint PATHS (files or folders; `-` reads standard input)."""
    if add_noqa and (fix or show_diff):
        raise click.UsageError("--add-noqa cannot be used with --fix or --diff")
    config = _config(
        paths,
        stdin_filename,
        config_file,
        isolated,
        force_exclude,
        unsafe_fixes,
        select,
        extend_select,
        ignore,
        _globs(exclude) if exclude else None,
        _globs(extend_exclude),
    )
    fixing = fix or show_diff
    # the formats that show fixes make and check them; the others only list each finding's
    # offered fix (for `[*]` and the summary's count): making them can cost several analyses
    with_fixes = output_format in ("full", "json", "sarif") and not (add_noqa or statistics)
    options = Options(
        fix=fixing,
        with_fixes=with_fixes,
        write=not show_diff,
        jobs=min(jobs or default_jobs(), max_jobs()),
        timeout=timeout,
        cache=None if no_cache else _cache(cache_dir),
    )
    results: list[FileResult] = []
    tasks: list[Task] = []
    seen: set[object] = set()
    for path in paths or (".",):
        if path == "-":
            name = stdin_filename or "-"
            data = sys.stdin.buffer.read()
            if stdin_filename and config.excluded(stdin_filename):
                if fix and not show_diff:
                    sys.stdout.buffer.write(data)  # a fix filter must still hand the text back
                continue
            settings = config.settings_for(name)
            result = lint_data(name, data, settings, replace(options, write=False))
            if fix and not show_diff:
                sys.stdout.buffer.write(_filtered(data, result))
            results.append(result)
            continue
        for candidate in discover([path], config.exclude, config.force_exclude):
            if candidate.problem is not None:
                problem = Diagnostic("GL901", candidate.path, 1, 1, candidate.problem)
                results.append(FileResult(candidate.path, [problem]))
            elif _identity(candidate.path) not in seen:  # overlapping paths, links: once
                seen.add(_identity(candidate.path))
                tasks.append(Task(candidate.path, config.settings_for(candidate.path)))
    terminal = _is_terminal(sys.stderr)
    wanted = (terminal and not quiet) if progress is None else progress
    shown = Progress(len(tasks), terminal) if wanted else None
    try:
        results.extend(lint_files(tasks, options, shown))
    finally:
        if shown is not None:
            shown.close()
    if options.cache is not None:
        options.cache.prune()
    diagnostics = sorted(
        (d for r in results for d in r.diagnostics if _shown(d, config)), key=lambda d: d.sort_key
    )
    not_analysed = [d for d in diagnostics if d.code.startswith(INPUT_PROBLEMS)]
    report_options = ReportOptions(unsafe_fixes=config.unsafe_fixes, docs_url=docs_url)
    if add_noqa:
        from gradlint.report.add_noqa import add_noqa_comments

        added = add_noqa_comments(results, diagnostics)
        write_err(f"Added {added} noqa directive{'s' if added != 1 else ''}.\n")
        sys.exit(EXIT_ERROR if any(r.internal_error for r in results) else EXIT_CLEAN)
    if show_diff:
        for result in results:
            after = result.fixed_text
            if after is not None:
                if not result.path.endswith(".ipynb"):
                    after = keep_untouched(result.text, after)  # as --fix would write it
                write_out(diff(result.path, result.text, after))
        # a file that was not analysed has no diff to show: say so, as `check` does
        write_err(render("concise", not_analysed, {}))
    elif not (fix and paths == ("-",)):
        # after --fix, findings and their positions are those of the text as written
        sources = {r.path: (r.fixed_text or r.text) if r.written else r.text for r in results}
        if statistics:
            report = summary.statistics(diagnostics, report_options, output_format == "json")
        else:
            report = render(output_format, diagnostics, sources, report_options)
        _write_report(report, output_file)
    for result in results:
        if result.not_written is not None:
            write_err(f"{result.path}: {result.not_written}\n")
    fixed = sum(r.fixes_applied for r in results)
    if show_fixes and fixed and not show_diff:
        write_err(summary.fixes_applied(results))
    if not quiet and not (fix and paths == ("-",)):
        if show_diff:
            changed = sum(1 for r in results if r.fixed_text is not None)
            write_err(f"Would fix {changed} file{'s' if changed != 1 else ''}.\n")
        else:
            write_err(summary.summary(diagnostics, results, report_options))
    if any(r.internal_error or r.not_written is not None for r in results):
        sys.exit(EXIT_ERROR)
    if exit_zero:
        sys.exit(EXIT_CLEAN)
    if exit_non_zero_on_fix and fix and any(r.written for r in results):
        sys.exit(EXIT_FINDINGS)
    if show_diff:
        changed = any(r.fixed_text is not None for r in results)
        sys.exit(EXIT_FINDINGS if changed or not_analysed else EXIT_CLEAN)
    sys.exit(EXIT_FINDINGS if diagnostics else EXIT_CLEAN)


def _is_terminal(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (OSError, ValueError):  # a closed stream
        return False


def _cache(folder: str) -> Cache | None:
    """The cache in `folder`, unless the folder holds something else: never adopt it."""
    cache = Cache(folder)
    if cache.usable():
        return cache
    write_err(
        f"gradlint: warning: not using {folder} as the cache: it is not empty and gradlint did "
        "not create it; running without a cache\n"
    )
    return None


def _identity(path: str) -> object:
    """One file however it is named (symbolic links, hard links), so it is linted and fixed
    once."""
    try:
        found = os.stat(path)
    except OSError:
        return os.path.realpath(path)
    return (found.st_dev, found.st_ino)


def _filtered(data: bytes, result: FileResult) -> bytes:
    """What `--fix -` prints: an editor replaces its buffer with it, so it is the fixed text,
    or the text as it came whenever there is nothing (safe) to fix or it could not be read."""
    from gradlint import fixes

    fixed = result.fixed_data
    if fixed is None or result.fixed_text is None:
        return data
    return fixed if fixes.parses(result.fixed_text, result.text, result.path) else data


def _config(
    paths: tuple[str, ...],
    stdin_filename: str | None,
    config_file: str | None,
    isolated: bool,
    force_exclude: bool,
    unsafe_fixes: bool,
    select: tuple[str, ...],
    extend_select: tuple[str, ...],
    ignore: tuple[str, ...],
    exclude: tuple[str, ...] | None = None,
    extend_exclude: tuple[str, ...] = (),
) -> Config:
    """The run's configuration; the config file is searched from the linted paths' folder."""
    if config_file and isolated:
        raise click.UsageError("--config and --isolated cannot be used together")
    cli = Selection(_codes(select) or None, _codes(extend_select), _codes(ignore))
    unknown = unknown_codes((*(cli.select or ()), *cli.extend_select, *cli.ignore))
    if unknown:
        raise click.UsageError(f"unknown rule code or prefix: {', '.join(unknown)}")
    located = [(stdin_filename or ".") if p == "-" else p for p in paths or (".",)]
    try:
        return load_config(
            located,
            config_file=config_file,
            isolated=isolated,
            cli=cli,
            force_exclude=force_exclude,
            unsafe_fixes=unsafe_fixes,
            exclude=exclude,
            extend_exclude=extend_exclude,
        )
    except ConfigError as error:
        raise UsageProblem(str(error)) from None


def _globs(values: tuple[str, ...]) -> tuple[str, ...]:
    """Globs from options given once or repeated, each comma-separated (as ruff takes them)."""
    return tuple(g.strip() for value in values for g in value.split(",") if g.strip())


def _write_report(report: str, output_file: str | None) -> None:
    if output_file is None:
        write_out(report)
        return
    try:
        with open(output_file, "w", encoding="utf-8", errors="backslashreplace") as out:
            out.write(report)
    except OSError as error:
        raise OutputError(f"{output_file}: {error.strerror or error}") from None


class UsageProblem(click.ClickException):
    """A problem with the command line or the configuration: exit 2, as click's usage errors."""

    exit_code = EXIT_ERROR


def _shown(diagnostic: Diagnostic, config: Config) -> bool:
    """Input problems (GL9xx) come from outside the engine's selection; filter all alike."""
    return config.settings_for(diagnostic.path).enabled(diagnostic.code)


@main.command()
@cache_dir_option
def clean(cache_dir: str) -> None:
    """Remove the cache folder (only what gradlint wrote in it)."""
    try:
        click.echo(Cache(cache_dir).clear(), err=True)
    except NotACache as error:
        raise UsageProblem(str(error)) from None


@main.command()
@click.argument("code", required=False)
@click.option("--all", "every", is_flag=True, help="Print every rule's page (markdown).")
def rule(code: str | None, every: bool) -> None:
    """Print the documentation of rule CODE (a code such as GL001, or a name such as
    stale-gradients)."""
    if every == (code is not None):
        raise click.UsageError("give a rule's code or name, or --all")
    from gradlint.report import rule_pages

    if every:
        click.echo(rule_pages.all_pages(), nl=False)
        return
    found = rule_pages.find(code or "")
    if found is None:
        raise click.UsageError(f"unknown rule: {code} (`gradlint rules` lists them)")
    click.echo(rule_pages.page(found), nl=False)


@main.command()
def rules() -> None:
    """List all rules."""
    width = max(len(found.name) for found in CATALOGUE.values())
    for found in CATALOGUE.values():
        fix = "fix" if found.fixable else "   "
        click.echo(f"{found.code}  {found.name:<{width}}  {fix}  {found.summary}")
