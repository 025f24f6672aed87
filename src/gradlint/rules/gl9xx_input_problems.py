"""Findings about the input itself rather than its training loops."""

from gradlint.rules.base import Rule

GL900 = Rule(
    code="GL900",
    name="syntax-error",
    summary="The file is not valid Python; it was not analysed",
    docs="""## What it does
Reports a file that cannot be parsed, with the parser's line, column and message.

## Why is this bad?
gradlint cannot check what it cannot parse, and says so instead of passing the file silently.

## Fix safety
No fix: correct the syntax error.
""",
)

GL901 = Rule(
    code="GL901",
    name="unreadable-file",
    summary="The file cannot be read or decoded; it was not analysed",
    docs="""## What it does
Reports a file that cannot be read (missing, a directory, no permission) or decoded
(binary content, NUL bytes, a wrong or unknown encoding declaration).

## Why is this bad?
A file that is skipped silently can hide a bug; gradlint says which file and why.

## Fix safety
No fix.
""",
)

GL999 = Rule(
    code="GL999",
    name="internal-error",
    summary="gradlint failed on this file; please report it",
    docs="""## What it does
Reports an internal error of gradlint on one file; the other files are still linted and the
run exits with code 2.

## Why is this bad?
The file was not analysed, so a bug in it may have gone unreported.

## Fix safety
No fix. Please report the file (or a reduced version of it) to gradlint's issue tracker.
""",
)

GL902 = Rule(
    code="GL902",
    name="analysis-limit",
    summary="The file is too large or took too long to analyse; it was not analysed",
    docs="""## What it does
Reports a file whose analysis went over the time limit (`--timeout`, 30 seconds by default)
or that is larger than gradlint analyses (10 MB of source), so that one pathological file
(generated code, a vendored data table) cannot hang a CI gate or pre-commit. The other files
are still linted.

## Why is this bad?
The file was not analysed, so a bug in it may have gone unreported.

## Fix safety
No fix. Raise `--timeout` for the file, exclude it, or report it if an ordinary training script
takes this long.
""",
)
