"""`gradlint check --format json|sarif|github|pylint`: structure and values tools rely on."""

from __future__ import annotations

import io
import json
import re
import textwrap
from pathlib import Path

import jsonschema
import pytest
from conftest import CliRunner

from gradlint import REPOSITORY, __version__
from gradlint.cli import main
from gradlint.diagnostics import Diagnostic
from gradlint.report import github
from gradlint.rules.registry import RULES

SARIF_SCHEMA = Path(__file__).parent / "data" / "sarif-schema-2.1.0.json"
TRAIN = textwrap.dedent(
    """\
    import torch

    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for x, y in batches:
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()  # the reported line
        opt.step()
    """
)
TRAIN_FIXED = TRAIN.replace("for x, y in batches:\n", "for x, y in batches:\n    opt.zero_grad()\n")
DISCARDED = textwrap.dedent(
    """\
    for x, y in batches:
        net(x).sum().backward()
        optim_g.zero_grad()
        optim_g.step()
    """
)
# `path:line: [CODE(symbol), obj] message`, pylint's `parseable` template with an empty obj
PYLINT_LINE = re.compile(
    r"^(?P<path>[^:]+):(?P<line>\d+): \[(?P<code>GL\d{3})\((?P<symbol>[a-z-]+)\), \] (?P<msg>.+)$"
)
GITHUB_LINE = re.compile(r"^::error (?P<props>[^:]*)::(?P<msg>.*)$")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.py").write_text(TRAIN)
    return tmp_path


def check(*args: str) -> str:
    result = CliRunner().invoke(main, ["check", *args])
    assert result.exit_code in (0, 1), result.output
    return result.stdout


def apply(text: str, edits: list[tuple[tuple[int, int], tuple[int, int], str]]) -> str:
    """Apply ((row, column), (end_row, end_column), content) edits, 1-based columns."""
    starts = [0]
    for line in io.StringIO(text, newline="").readlines():
        starts.append(starts[-1] + len(line))

    def offset(row: int, column: int) -> int:
        return starts[row - 1] + column - 1

    for (row, col), (end_row, end_col), content in sorted(edits, reverse=True):
        text = text[: offset(row, col)] + content + text[offset(end_row, end_col) :]
    return text


def json_edits(finding: dict) -> list[tuple[tuple[int, int], tuple[int, int], str]]:
    return [
        (
            (e["location"]["row"], e["location"]["column"]),
            (e["end_location"]["row"], e["end_location"]["column"]),
            e["content"],
        )
        for e in finding["fix"]["edits"]
    ]


def sarif_edits(result: dict) -> list[tuple[tuple[int, int], tuple[int, int], str]]:
    (change,) = result["fixes"][0]["artifactChanges"]
    return [
        (
            (r["deletedRegion"]["startLine"], r["deletedRegion"]["startColumn"]),
            (r["deletedRegion"]["endLine"], r["deletedRegion"]["endColumn"]),
            r.get("insertedContent", {}).get("text", ""),
        )
        for r in change["replacements"]
    ]


# json


def test_json_schema_and_values(project):
    (finding,) = json.loads(check("--format", "json", "train.py"))
    assert set(finding) == {
        "code",
        "message",
        "path",
        "location",
        "end_location",
        "cell",
        "trail",
        "url",
        "fix",
    }
    assert finding["code"] == "GL001"
    assert finding["path"] == "train.py"
    assert finding["location"] == {"row": 7, "column": 5}
    # the span ends after `loss.backward()`; the trailing comment is part of the line's code
    line = TRAIN.splitlines()[6]
    assert finding["end_location"] == {"row": 7, "column": len(line.rstrip()) + 1}
    assert finding["cell"] is None
    assert finding["url"] == f"{REPOSITORY}/blob/v{__version__}/docs/rules/GL001.md"
    assert finding["trail"][0] == "opt.step() at line 8"
    assert "loss.backward() at line 7" in finding["trail"]
    assert "opt.step()" in finding["message"]
    fix = finding["fix"]
    assert fix["applicability"] == "safe"
    assert "zero_grad" in fix["message"]
    assert fix["edits"] == [
        {
            "content": "    opt.zero_grad()\n",
            "location": {"row": 6, "column": 1},
            "end_location": {"row": 6, "column": 1},
        }
    ]
    assert apply(TRAIN, json_edits(finding)) == TRAIN_FIXED


def test_json_edits_reproduce_a_moved_reset(project):
    (project / "discarded.py").write_text(DISCARDED)
    (finding,) = json.loads(check("--format", "json", "discarded.py"))
    assert finding["code"] == "GL002"
    assert len(finding["fix"]["edits"]) >= 1
    check("--fix", "discarded.py")
    fixed = (project / "discarded.py").read_text()
    assert fixed != DISCARDED
    assert apply(DISCARDED, json_edits(finding)) == fixed


def test_json_edits_keep_crlf_line_endings(project):
    crlf = TRAIN.replace("\n", "\r\n")
    (project / "crlf.py").write_bytes(crlf.encode())
    (finding,) = json.loads(check("--format", "json", "crlf.py"))
    check("--fix", "crlf.py")
    fixed = (project / "crlf.py").read_bytes().decode()
    assert "opt.zero_grad()\r\n" in fixed
    assert apply(crlf, json_edits(finding)) == fixed


def test_json_without_findings_is_an_empty_array(project):
    (project / "clean.py").write_text(TRAIN_FIXED)
    assert json.loads(check("--format", "json", "clean.py")) == []


def test_json_finding_without_fix_and_unreadable_file(project):
    (project / "broken.py").write_text("loss.backward(\n")
    findings = json.loads(check("--format", "json", "broken.py", "missing.py"))
    assert [f["code"] for f in findings] == ["GL900", "GL901"]
    assert all(f["fix"] is None for f in findings)
    # a span is never shorter than nothing
    for f in findings:
        start, end = f["location"], f["end_location"]
        assert (end["row"], end["column"]) >= (start["row"], start["column"])


def write_notebook(path: Path) -> None:
    """A markdown cell, then the setup, then the loop: the finding is in cell 3, line 3."""

    def cell(kind: str, source: str) -> dict:
        extra = {"execution_count": None, "outputs": []} if kind == "code" else {}
        return {"cell_type": kind, "metadata": {}, **extra, "source": source.splitlines(True)}

    setup, loop = TRAIN.split("for x, y in batches:\n")
    cells = [
        cell("markdown", "# Training\n"),
        cell("code", setup),
        cell("code", "for x, y in batches:\n" + loop),
    ]
    notebook = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(notebook, indent=1) + "\n")


def test_json_notebook_finding_counts_in_its_cell(project):
    write_notebook(project / "train.ipynb")
    before = (project / "train.ipynb").read_text()
    (finding,) = json.loads(check("--format", "json", "train.ipynb"))
    assert finding["cell"] == 3
    assert finding["location"] == {"row": 3, "column": 5}
    line = "    loss.backward()  # the reported line"
    assert finding["end_location"] == {"row": 3, "column": len(line) + 1}
    # edits apply to the notebook file as stored
    check("--fix", "train.ipynb")
    after = (project / "train.ipynb").read_text()
    assert after != before
    assert apply(before, json_edits(finding)) == after


# sarif


def sarif_log(*args: str) -> dict:
    return json.loads(check("--format", "sarif", *args))


def test_sarif_validates_against_the_official_schema(project):
    (project / "broken.py").write_text("loss.backward(\n")
    write_notebook(project / "train.ipynb")
    log = sarif_log("train.py", "broken.py", "train.ipynb")
    schema = json.loads(SARIF_SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker())
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(log)]
    assert errors == []
    assert len(log["runs"][0]["results"]) == 3


def test_sarif_notebook_result_is_on_the_file(project):
    write_notebook(project / "train.ipynb")
    (result,) = sarif_log("train.ipynb")["runs"][0]["results"]
    (location,) = result["locations"]
    assert location["physicalLocation"] == {
        "artifactLocation": {"uri": "train.ipynb", "uriBaseId": "%SRCROOT%"}
    }
    assert result["message"]["text"].startswith("cell 3, line 3: ")
    assert result["properties"]["cell"] == 3


def test_sarif_rules_and_result(project):
    log = sarif_log("train.py")
    assert log["version"] == "2.1.0"
    (run,) = log["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "gradlint"
    assert driver["informationUri"].startswith("https://")
    assert [r["id"] for r in driver["rules"]] == list(RULES)
    gl001 = driver["rules"][list(RULES).index("GL001")]
    assert gl001["name"] == "stale-gradients"
    assert gl001["shortDescription"]["text"] == RULES["GL001"].summary + "."
    assert gl001["fullDescription"]["text"].startswith("Finds paths")
    assert "## Why is this bad?" in gl001["help"]["markdown"]
    assert gl001["help"]["text"] == RULES["GL001"].docs
    assert gl001["defaultConfiguration"]["level"] == "error"

    (result,) = run["results"]
    assert result["ruleId"] == "GL001"
    assert driver["rules"][result["ruleIndex"]]["id"] == "GL001"
    assert result["level"] == "error"
    assert "opt.step()" in result["message"]["text"]
    (location,) = result["locations"]
    physical = location["physicalLocation"]
    assert physical["artifactLocation"] == {"uri": "train.py", "uriBaseId": "%SRCROOT%"}
    line = TRAIN.splitlines()[6]
    assert physical["region"] == {
        "startLine": 7,
        "startColumn": 5,
        "endLine": 7,
        "endColumn": len(line.rstrip()) + 1,
    }
    assert apply(TRAIN, sarif_edits(result)) == TRAIN_FIXED
    assert result["fixes"][0]["description"]["text"].startswith("Insert")


def test_sarif_uri_is_relative_posix_and_escaped(project):
    folder = project / "my models" / "v1"
    folder.mkdir(parents=True)
    (folder / "train.py").write_text(TRAIN)
    for argument in (str(folder / "train.py"), "./my models/v1/train.py"):
        (result,) = sarif_log(argument)["runs"][0]["results"]
        artifact = result["locations"][0]["physicalLocation"]["artifactLocation"]
        assert artifact == {"uri": "my%20models/v1/train.py", "uriBaseId": "%SRCROOT%"}


def fingerprints(log: dict) -> list[str]:
    return [r["partialFingerprints"]["gradlint/v1"] for r in log["runs"][0]["results"]]


def test_sarif_fingerprint_survives_lines_inserted_above(project):
    before = sarif_log("train.py")
    (project / "train.py").write_text("import os\nimport sys\n\n" + TRAIN)
    after = sarif_log("train.py")
    region = after["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]
    assert region["startLine"] == 10
    assert fingerprints(after) == fingerprints(before)
    assert "primaryLocationLineHash" not in after["runs"][0]["results"][0]["partialFingerprints"]


def test_sarif_fingerprint_tells_identical_lines_and_files_apart(project):
    loop = TRAIN.split("for x, y in batches:\n", 1)[1]
    (project / "twice.py").write_text(TRAIN + "for x, y in batches:\n" + loop)
    prints = fingerprints(sarif_log("twice.py"))
    assert len(prints) == 2 and len(set(prints)) == 2
    (project / "other.py").write_text(TRAIN)
    assert len(set(fingerprints(sarif_log("train.py", "other.py")))) == 2


# github


def parse_github(line: str) -> tuple[dict[str, str], str]:
    match = GITHUB_LINE.match(line)
    assert match, line
    props = dict(item.split("=", 1) for item in match["props"].split(","))
    return props, match["msg"]


def test_github_annotation(project):
    (line,) = check("--format", "github", "train.py").splitlines()
    props, message = parse_github(line)
    assert props == {
        "file": "train.py",
        "line": "7",
        "col": "5",
        "endLine": "7",
        "endColumn": str(len(TRAIN.splitlines()[6].rstrip()) + 1),
        "title": "gradlint (GL001)",
    }
    assert message.startswith("gradients accumulate across iterations because `opt.zero_grad()`")


def test_github_escapes_file_names(project):
    (project / "a,b:c%d.py").write_text(TRAIN)
    (line,) = check("--format", "github", "a,b:c%d.py").splitlines()
    props, _ = parse_github(line)
    assert props["file"] == "a%2Cb%3Ac%25d.py"


def test_github_escapes_messages_and_properties():
    d = Diagnostic("GL001", "x,y:z.py", 2, 1, "100% stale\r\nsee: a, b")
    (line,) = github.render([d], {"x,y:z.py": "a\nb\n"}).splitlines()
    props, message = parse_github(line)
    assert message == "100%25 stale%0D%0Asee: a, b"
    assert props["file"] == "x%2Cy%3Az.py"
    assert github.escape_property("a\nb%") == "a%0Ab%25"


def test_github_notebook_cell_annotates_the_file():
    d = Diagnostic("GL001", "nb.ipynb", 3, 5, "stale", cell=2)
    props, message = parse_github(github.render([d], {}).rstrip("\n"))
    assert props == {"file": "nb.ipynb", "title": "gradlint (GL001)"}
    assert message == "cell 2, line 3: stale"


# pylint


def test_pylint_parseable_lines(project):
    (project / "discarded.py").write_text(DISCARDED)
    lines = check("--format", "pylint", "train.py", "discarded.py").splitlines()
    parsed = [PYLINT_LINE.match(line) for line in lines]
    assert all(parsed), lines
    assert [(m["path"], m["line"], m["code"], m["symbol"]) for m in parsed] == [
        ("discarded.py", "3", "GL002", "discarded-gradients"),
        ("train.py", "7", "GL001", "stale-gradients"),
    ]
    assert "opt.step()" in parsed[1]["msg"]


def test_pylint_notebook_line_points_at_the_file(project):
    write_notebook(project / "train.ipynb")
    (line,) = check("--format", "pylint", "train.ipynb").splitlines()
    match = PYLINT_LINE.match(line)
    assert match, line
    assert (match["path"], match["line"]) == ("train.ipynb", "1")
    assert match["msg"].startswith("cell 3, line 3: ")


def test_formats_are_listed_in_help():
    result = CliRunner().invoke(main, ["check", "--help"])
    for name in ("concise", "full", "json", "sarif", "github", "pylint"):
        assert name in result.stdout
