"""GL800 unused-noqa: a `# noqa: GL...` comment that no longer suppresses anything (ruff's RUF100
for gradlint's own codes)."""

from gradlint.rules.base import Rule

CODE = "GL800"
DOCS = """## What it does
Finds `# noqa` comments that list a gradlint code (`# noqa: GL001`) for which gradlint reports
nothing on that line, as ruff's RUF100 does for ruff's codes. Only gradlint's own codes are
judged, and only those of rules that ran on the file: `# noqa: E501` (another tool's code), a
bare `# noqa`, and a code that is not selected or is ignored for the file are left alone. A
file that was only partly analysed (GL902) is not judged.

Unlike RUF100 this rule is on by default: it can never misread another tool's comment, and a
stale `# noqa: GL001` hides the next real finding on its line. `ignore = ["GL800"]` turns it
off. flake8 has its own handling of `# noqa`, so the flake8 plugin never reports it.

## Why is this bad?
A suppression outlives the code it was written for: after the loop is fixed or the line is
edited, the comment still silences any new finding of that rule on the line, so a stale
gradient added later goes unreported.

## Example
```python
for x, y in loader:
    optimizer.zero_grad()
    loss = criterion(model(x), y)
    loss.backward()  # noqa: GL001
    optimizer.step()
```

## Use instead
```python
for x, y in loader:
    optimizer.zero_grad()
    loss = criterion(model(x), y)
    loss.backward()
    optimizer.step()
```

## Fix safety
No automatic fix yet: delete the unused code from the comment (or the whole comment). When
ruff also lints the project, tell ruff that `GL` codes belong to another tool, or its RUF100
removes them as unused:

```toml
[tool.ruff.lint]
external = ["GL"]
```
"""

RULE = Rule(
    code=CODE,
    name="unused-noqa",
    summary="A `# noqa` comment lists a gradlint code that suppresses nothing on its line",
    docs=DOCS,
    # a file is read for this rule only when it holds such a comment
    triggers=(("noqa", "GL"),),
)
