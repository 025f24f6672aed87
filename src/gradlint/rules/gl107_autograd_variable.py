"""GL107 autograd-variable: `torch.autograd.Variable(...)`, a wrapper without effect since 0.4."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from gradlint.analysis.syntax import code_of, dotted
from gradlint.rules.base import Context, Rewrite, Rule, Violation

CODE = "GL107"
DOCS = """## What it does
Finds calls of `torch.autograd.Variable` however it is imported: `torch.autograd.Variable(x)`,
`autograd.Variable(x)` after `from torch import autograd`, `Variable(x)` after
`from torch.autograd import Variable` (or `torch.autograd.variable`), and any `as` alias.
`Variable(x, requires_grad=True)` (also with `True` as the second positional argument) and
`Variable(x, volatile=True)` are reported too. A `Variable` that is not imported from
`torch.autograd` is not reported.

Related: TorchFix's deprecated-symbol rules (TOR101/TOR103) do not cover `Variable`; this rule
also rewrites the call.

## Why is this bad?
Since PyTorch 0.4 tensors carry autograd state themselves and `Variable(x)` only returns `x`'s
data detached from its history: it cuts the graph when `x` has one, and `volatile=True` does
nothing at all (use `torch.no_grad()`). Code written around `Variable` usually also uses
`.data[0]` and other pre-0.4 idioms that now fail or mislead.

## Example
```python
import torch
from torch.autograd import Variable

weights = Variable(torch.randn(4, 2), requires_grad=True)
inputs = Variable(torch.randn(8, 4))
scores = inputs @ weights
```

## Use instead
```python
import torch

weights = torch.randn(4, 2).requires_grad_()
inputs = torch.randn(8, 4)
scores = inputs @ weights
```

## Fix safety
`Variable(x)` becomes `x` and `Variable(x, requires_grad=True)` becomes `x.requires_grad_()`.
The fix is safe when `x` is a fresh tensor from a `torch` factory (`torch.randn(...)`,
`torch.from_numpy(a)`, `torch.tensor(...)`): it has no history to cut and nothing else holds
it. For any other `x` it is unsafe: `Variable(x)` detached `x` from its graph and
`x.requires_grad_()` changes `x` itself rather than a detached copy. Calls with
`volatile=...` or other arguments get no fix. The import is left in place; remove it once no
`Variable` is left (ruff's F401 does that).
"""

# parents before which a replacement that is not an atom needs parentheses
_OPERAND_OF = (
    cst.Attribute,
    cst.Subscript,
    cst.BinaryOperation,
    cst.UnaryOperation,
    cst.BooleanOperation,
    cst.Comparison,
    cst.Await,
)
_VARIABLE = frozenset({"torch.autograd.Variable", "torch.autograd.variable.Variable"})
# torch functions whose result is a new tensor without history
_FACTORIES = frozenset(
    {
        "tensor",
        "as_tensor",
        "from_numpy",
        "zeros",
        "ones",
        "empty",
        "full",
        "eye",
        "rand",
        "randn",
        "randint",
        "randperm",
        "arange",
        "linspace",
        "logspace",
        "zeros_like",
        "ones_like",
        "rand_like",
        "randn_like",
        "Tensor",
        "FloatTensor",
        "DoubleTensor",
        "LongTensor",
        "IntTensor",
        "ByteTensor",
        "HalfTensor",
        "BoolTensor",
    }
)


def check(context: Context) -> Iterator[Violation]:
    imports = context.imports
    for node in context.listed.of_type(cst.Call):
        assert isinstance(node, cst.Call)
        name = dotted(node.func)
        if name is not None and imports.qualified(name) in _VARIABLE:
            parent = context.tree.parent.get(id(node))
            yield _violation(node, isinstance(parent, _OPERAND_OF))


def _violation(call: cst.Call, operand: bool) -> Violation:
    """`operand`: the call sits inside a larger expression, so a replacement may need parentheses."""
    data, requires_grad, other = _arguments(call)
    label = _source(call.func)
    if data is None or other:
        message = f"`{_source(call)}` is deprecated since PyTorch 0.4; use the tensor itself"
        if "volatile" in code_of(call):
            message += " and `with torch.no_grad():` instead of `volatile=True`"
        return Violation(CODE, call, message)
    data_text = _source(data)
    replacement = f"{data_text}.requires_grad_()" if requires_grad else data_text
    message = (
        f"`{label}({data_text}{', requires_grad=True' if requires_grad else ''})` is deprecated "
        f"since PyTorch 0.4; use `{replacement}`"
    )
    fresh = _is_fresh(data)
    new: cst.BaseExpression = _atom(data) if operand or requires_grad else data
    if requires_grad:
        new = cst.Call(func=cst.Attribute(value=new, attr=cst.Name("requires_grad_")))

    def apply(module: cst.Module) -> cst.Module | None:
        result = module.deep_replace(call, _keep_parens(call, new))
        return result if isinstance(result, cst.Module) else None

    fix = Rewrite(
        f"Replace `{label}(...)` with `{_source(new)}`", apply, "safe" if fresh else "unsafe"
    )
    return Violation(CODE, call, message, fix=fix)


def _arguments(call: cst.Call) -> tuple[cst.BaseExpression | None, bool, bool]:
    """(data, requires_grad, any argument the fix cannot express)."""
    positional = [a for a in call.args if a.keyword is None]
    if any(a.star for a in call.args) or len(positional) not in (1, 2):
        return None, False, True
    data = positional[0].value
    flags = [("requires_grad", a.value) for a in positional[1:]]
    flags += [(a.keyword.value, a.value) for a in call.args if a.keyword is not None]
    requires_grad, other = False, False
    for name, value in flags:
        literal = code_of(value)
        if name == "requires_grad" and literal in ("True", "False"):
            requires_grad = literal == "True"
        elif not (name == "volatile" and literal == "False"):
            other = True
    return data, requires_grad, other


def _is_fresh(data: cst.BaseExpression) -> bool:
    if not isinstance(data, cst.Call):
        return False
    name = dotted(data.func) or ""
    head, _, tail = name.rpartition(".")
    no_grad = not any(
        a.keyword is not None and a.keyword.value == "requires_grad" for a in data.args
    )
    return head == "torch" and tail in _FACTORIES and no_grad


def _source(node: cst.CSTNode) -> str:
    return cst.Module(body=[]).code_for_node(node)


def _atom(expression: cst.BaseExpression) -> cst.BaseExpression:
    """`expression` in a form that can take `.attr` after it."""
    if isinstance(expression, (cst.Name, cst.Attribute, cst.Call, cst.Subscript)):
        return expression
    if expression.lpar:
        return expression
    return expression.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])


def _keep_parens(call: cst.Call, new: cst.BaseExpression) -> cst.BaseExpression:
    """A parenthesised call keeps its parentheses."""
    if call.lpar and not new.lpar:
        return new.with_changes(lpar=call.lpar, rpar=call.rpar)
    return new


RULE = Rule(
    code=CODE,
    name="autograd-variable",
    summary="`torch.autograd.Variable(...)`: deprecated since PyTorch 0.4, use the tensor itself",
    fixable=True,
    triggers=(("Variable", "autograd"),),
    docs=DOCS,
    check=check,
)
