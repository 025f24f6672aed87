"""Jupyter notebooks: findings by cell, IPython syntax masked in place, fixes written into the
changed cell only, the rest of the file left byte for byte."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import CliRunner

from gradlint import notebook
from gradlint.cli import main

NOTEBOOKS = Path(__file__).parent / "notebooks"
TRAINING = NOTEBOOKS / "training.ipynb"  # nbformat's own layout: indent 1, sorted keys

SETUP = [
    "import torch\n",
    "model = torch.nn.Linear(4, 1)\n",
    "opt = torch.optim.SGD(model.parameters(), lr=0.1)",
]
LOOP = [
    "for x, y in batches:\n",
    "    loss = ((model(x) - y) ** 2).mean()\n",
    "    loss.backward()\n",
    "    opt.step()\n",
]


def code(source: list[str] | str, count: int | None = None, outputs: list | None = None) -> dict:
    return {
        "cell_type": "code",
        "execution_count": count,
        "metadata": {},
        "outputs": outputs or [],
        "source": source,
    }


def markdown(source: list[str]) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": source}


def write_notebook(path: Path, cells: list[dict], indent: int | None = 1, **dumps) -> str:
    content = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    text = json.dumps(content, indent=indent, **{"ensure_ascii": False, **dumps}) + "\n"
    path.write_text(text, encoding="utf-8")
    return text


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_finding_is_reported_by_cell_and_line_in_the_cell(runner, here):
    shutil.copy(TRAINING, here / "training.ipynb")
    result = runner.invoke(main, ["check", "training.ipynb"])
    assert result.exit_code == 1
    # cell 5 counts the markdown cell and the skipped %%bash cell; line 5 is `%time loss.backward()`
    # and column 11 is where `loss` stands after `    %time `
    assert result.stdout.splitlines() == [
        "training.ipynb:cell 5:5:11: GL001 gradients accumulate across iterations because `opt.zero_grad()` is never called between updates: `loss.backward()`"
        " adds to the gradients that `opt.step()` (line 6) already applied, and `opt.step()` (line 6) applies the sum"
    ]


def test_events_in_another_cell_are_named_with_their_cell(runner, here):
    compute = ["def compute(x, y):\n", "    loss = model(x).sum()\n", "    loss.backward()\n"]
    loop = ["for x, y in batches:\n", "    compute(x, y)\n", "    opt.step()\n"]
    write_notebook(here / "nb.ipynb", [code(SETUP), code(compute), markdown(["Train"]), code(loop)])
    result = runner.invoke(main, ["check", "nb.ipynb"])
    assert result.stdout.startswith("nb.ipynb:cell 2:3:5: GL001 ")
    assert "`opt.step()` (line 3 of cell 4) already applied" in result.stdout


def test_masking_keeps_line_numbers_and_columns():
    source = "".join(
        [
            "%matplotlib inline\n",
            "!pip install torch\n",
            "files = !ls -la\n",
            "?torch.nn\n",
            "model?\n",
            "for x in data:\n",
            "    %time loss.backward()\n",
            "    %timeit -n 10 -q step(x)\n",
            "    !echo \\\n",
            "        continued\n",
            "ok = (a\n",
            "      != b)\n",
            "x = y % z\n",
            'msg = ("loss %f"\n',
            "       % loss)",
        ]
    )
    masked = notebook.mask(source)
    assert masked is not None
    lines, magics = masked
    original = source.splitlines(keepends=True)
    assert len(lines) == len(original)
    assert lines[6] == "    pass; loss.backward()\n"
    assert lines[6].index("loss") == original[6].index("loss")
    assert lines[7].index("step(x)") == original[7].index("step(x)")
    assert lines[8] == lines[9] == "    pass\n"  # a continued shell line stays in its block
    assert [m is not None for m in magics] == [True] * 5 + [False, True, True, True, True] + [
        False
    ] * 5
    assert "".join(lines[10:]) == "".join(original[10:]) + "\n"
    compile("".join(lines), "cell", "exec")


@pytest.mark.parametrize("magic", ["%%bash", "%%html", "%%writefile train.py", "%%javascript"])
def test_cells_in_another_language_are_skipped(magic):
    assert notebook.mask(f"{magic}\nfor x in a b; do echo $x; done\n") is None


@pytest.mark.parametrize("magic", ["%%time", "%%timeit -n 3", "\n%%capture out"])
def test_timed_cells_keep_their_python_body(magic):
    masked = notebook.mask(f"{magic}\nloss.backward()\n")
    assert masked is not None
    assert masked[0][-1] == "loss.backward()\n"


@pytest.mark.parametrize("indent", [1, 2, 4])
def test_fix_changes_only_the_affected_cell(runner, here, indent):
    cells = [
        markdown(["# Tr\u00e4ining\n", "notes"]),
        code(
            ["!pip install torch\n", *SETUP],
            1,
            [{"output_type": "stream", "name": "stdout", "text": ["ok\n"]}],
        ),
        code(["%%bash\n", "ls"], 2),
        code(["%%time\n", *LOOP[:2], "    %time loss.backward()\n", "    opt.step()"], 3),
        code(["print('d\u00f6ne')"], 4),
    ]
    before = write_notebook(here / "nb.ipynb", cells, indent=indent)
    result = runner.invoke(main, ["check", "--fix", "nb.ipynb"])
    assert result.exit_code == 0, result.output
    after = (here / "nb.ipynb").read_text(encoding="utf-8")
    item = " " * (4 * indent)
    anchor = f'{item}"for x, y in batches:\\n",\n'
    assert after == before.replace(anchor, anchor + f'{item}"    opt.zero_grad()\\n",\n')
    fixed_cells = json.loads(after)["cells"]
    assert fixed_cells[3]["source"] == [
        "%%time\n",
        "for x, y in batches:\n",
        "    opt.zero_grad()\n",
        "    loss = ((model(x) - y) ** 2).mean()\n",
        "    %time loss.backward()\n",
        "    opt.step()",
    ]
    assert fixed_cells[:3] + fixed_cells[4:] == cells[:3] + cells[4:]


def test_fix_keeps_a_compact_notebook_compact(runner, here):
    before = write_notebook(here / "nb.ipynb", [code(SETUP), code(LOOP, 7)], indent=None)
    runner.invoke(main, ["check", "--fix", "nb.ipynb"])
    anchor = '"for x, y in batches:\\n", '
    expected = before.replace(anchor, anchor + '"    opt.zero_grad()\\n", ')
    assert (here / "nb.ipynb").read_text(encoding="utf-8") == expected


def test_fix_of_the_stored_notebook_keeps_everything_else(runner, here):
    shutil.copy(TRAINING, here / "training.ipynb")
    before = TRAINING.read_text(encoding="utf-8")
    result = runner.invoke(main, ["check", "--fix", "training.ipynb"])
    assert result.exit_code == 0, result.output
    after = (here / "training.ipynb").read_text(encoding="utf-8")
    anchor = '    "for x, y in batches:\\n",\n'
    assert after == before.replace(anchor, anchor + '    "    opt.zero_grad()\\n",\n')
    assert "Donn\u00e9es" in after and after.endswith("}\n")


def test_fix_keeps_ascii_escapes_string_sources_and_a_missing_final_newline(runner, here):
    cells = [code("".join(SETUP) + "\n" + "".join(LOOP) + "print('f\u00e9rtig')")]
    text = write_notebook(here / "nb.ipynb", cells, indent=2, ensure_ascii=True)
    (here / "nb.ipynb").write_text(text.rstrip("\n"), encoding="utf-8")
    runner.invoke(main, ["check", "--fix", "nb.ipynb"])
    after = (here / "nb.ipynb").read_text(encoding="utf-8")
    assert "f\\u00e9rtig" in after and not after.endswith("\n")
    source = json.loads(after)["cells"][0]["source"]
    assert isinstance(source, str) and "    opt.zero_grad()\n" in source


def test_diff_shows_the_cell_change_and_writes_nothing(runner, here):
    before = write_notebook(here / "nb.ipynb", [code(SETUP), code(LOOP)])
    result = runner.invoke(main, ["check", "--diff", "nb.ipynb"])
    assert result.exit_code == 1
    assert '+    "    opt.zero_grad()\\n",' in result.stdout
    assert (here / "nb.ipynb").read_text(encoding="utf-8") == before


def test_follow_keeps_fixes_inside_one_cell():
    book = notebook.Notebook(
        "",
        (
            notebook.CodeCell(2, "a\n!ls\n", ("a\n", "pass\n"), (None, "!ls\n")),
            notebook.CodeCell(4, "b\nc", ("b\n", "c\n"), (None, None)),
        ),
        {},
    )
    joined = notebook.join(book)
    assert joined.text == "a\npass\nb\nc\n"
    assert joined.locate(3) == (4, 1)
    inserted = notebook.follow(joined, "a\npass\nnew\nb\nc\n")
    assert inserted is not None  # at a boundary, a line goes to the cell before it
    assert notebook.cell_sources(book, inserted) == {2: "a\n!ls\nnew\n", 4: "b\nc"}
    assert notebook.follow(joined, "pass\nb\na\nc\n") is None  # moves `a` into another cell
    assert notebook.follow(joined, "a\nb\nc\n") is None  # drops a masked magic
    changed = notebook.follow(joined, "a\npass\nb\nnew\nc\n")
    assert changed is not None
    assert notebook.cell_sources(book, changed) == {2: "a\n!ls\n", 4: "b\nnew\nc"}


def test_noqa_in_a_cell_suppresses(runner, here):
    loop = [line.replace("loss.backward()", "loss.backward()  # noqa: GL001") for line in LOOP]
    write_notebook(here / "nb.ipynb", [code(SETUP), code(loop)])
    result = runner.invoke(main, ["check", "nb.ipynb"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "not a notebook"),
        ('{"worksheets": []}', "nbformat 4"),
    ],
)
def test_unreadable_notebook_is_reported_and_the_run_goes_on(runner, here, content, reason):
    (here / "broken.ipynb").write_text(content)
    write_notebook(here / "stale.ipynb", [code(SETUP + ["\n"] + LOOP)])
    result = runner.invoke(main, ["check", "."])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("broken.ipynb:1:1: GL901 cannot read notebook: ")
    assert reason in lines[0]
    assert lines[1].startswith("stale.ipynb:cell 1:6:5: GL001 ")


def test_syntax_error_names_the_cell(runner, here):
    write_notebook(here / "nb.ipynb", [code(SETUP), markdown(["x"]), code([*LOOP, "def f(:\n"])])
    result = runner.invoke(main, ["check", "nb.ipynb"])
    assert result.stdout.startswith("nb.ipynb:cell 3:5:")
    assert " GL900 cannot parse" in result.stdout


@pytest.mark.parametrize(
    "cells",
    [[], [markdown(["# Only text"])], [code(["%%bash\n", "echo hi"]), code("")]],
)
def test_notebook_without_python_is_clean(runner, here, cells):
    write_notebook(here / "nb.ipynb", cells)
    result = runner.invoke(main, ["check", "nb.ipynb"])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""


def test_notebook_of_another_kernel_is_not_linted(runner, here):
    text = write_notebook(here / "nb.ipynb", [code(SETUP + ["\n"] + LOOP)])
    content = json.loads(text)
    content["metadata"]["language_info"] = {"name": "R"}
    (here / "nb.ipynb").write_text(json.dumps(content))
    assert runner.invoke(main, ["check", "nb.ipynb"]).exit_code == 0


def test_folders_are_walked_for_notebooks(runner, here):
    (here / "pkg").mkdir()
    write_notebook(here / "pkg" / "train.ipynb", [code(SETUP), code(LOOP)])
    (here / "pkg" / ".ipynb_checkpoints").mkdir()
    write_notebook(here / "pkg" / ".ipynb_checkpoints" / "train-checkpoint.ipynb", [code(LOOP)])
    result = runner.invoke(main, ["check", "."])
    assert result.stdout.splitlines()[0].startswith("pkg/train.ipynb:cell 2:3:5: GL001 ")
    assert len(result.stdout.splitlines()) == 1


def test_full_format_frames_the_cell_not_the_json():
    result = CliRunner().invoke(main, ["check", "--no-cache", "--format", "full", str(TRAINING)])
    frame = [line for line in result.output.splitlines() if line.startswith("  > ")]
    assert frame == ["  > 5 |     %time loss.backward()"]


def test_training_loop_rules_read_notebook_cells(runner, here):
    setup = [
        "import torch\n",
        "model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.2), "
        "torch.nn.Linear(8, 1))\n",
        "opt = torch.optim.SGD(model.parameters(), lr=0.1)\n",
        "model.train()",
    ]
    train = [
        "for epoch in range(3):\n",
        "    for x, y in batches:\n",
        "        opt.zero_grad()\n",
        "        ((model(x) - y) ** 2).mean().backward()\n",
        "        opt.step()\n",
        "    model.eval()\n",
    ]
    evaluate = [
        "predictions = []\n",
        "for x, y in batches:\n",
        "    predictions.append(model(x))\n",
    ]
    write_notebook(here / "nb.ipynb", [code(setup), code(train), code(evaluate)])
    result = runner.invoke(main, ["check", "--select", "GL113,GL114", "nb.ipynb"])
    lines = result.stdout.splitlines()
    assert [line.split()[2] for line in lines] == ["GL113", "GL114"]
    assert lines[0].startswith("nb.ipynb:cell 2:6:5: ")  # `model.eval()` in the training cell
    assert lines[1].startswith("nb.ipynb:cell 3:2:1: ")  # the evaluation loop
