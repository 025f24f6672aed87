"""GL110 moved-leaf: `torch.randn(3, requires_grad=True).to(device)` names a copy, not the leaf."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import cast

import libcst as cst

from gradlint.analysis.syntax import argument, code_of, dotted
from gradlint.analysis.tracking import At, Report, Tracker, common
from gradlint.rules.base import Context, Rewrite, Rule, Violation
from gradlint.triggers import child_nodes

CODE = "GL110"
DOCS = """## What it does
Finds a name (or attribute) assigned a tensor that is created with `requires_grad=True` (or
made to require grad by `.requires_grad_()`) and then moved or cast in the same expression:
`w = torch.randn(3, requires_grad=True).to(device)`, `.cuda()`, `.double()`, `.half()`,
`.to(torch.float64)`, `.type(torch.DoubleTensor)`. Factories are the `torch` functions that
make a new tensor (`randn`, `rand`, `zeros`, `ones`, `empty`, `full`, `tensor`, `arange`,
`linspace`, `eye`, the `*_like` ones).

The same holds when the name is rebound to the conversion later, on a path of the training
code: `w = torch.randn(3, requires_grad=True)` and then `w = w.to(device)` or, behind a flag,
`if args.double: w = w.double()`. A copy kept under another name (`moved = w.to(device)`) is
fine: `w` stays the leaf and the copy passes its gradient on. A conversion under
`torch.no_grad()` is not this rule's (its result is a leaf that does not require grad).

Conversions that return the same tensor are not reported: `.float()` or `.to(torch.float32)`
of a float32 tensor, `.cpu()` or `.to("cpu")` of a tensor made on the CPU. Neither is
`.requires_grad_()` after the move (`torch.randn(3).to(device).requires_grad_()`) nor a move
wrapped in `nn.Parameter(...)`, which makes a new leaf.

## Why is this bad?
The conversion is an operation autograd records: the name holds its result, a non-leaf, while
the leaf that collects gradient is dropped. After `backward()` the name's `.grad` stays None
(with a warning), a manual update `w -= lr * w.grad` fails, and an optimizer refuses it with
"ValueError: can't optimize a non-leaf Tensor". With `.to(device)` the script works on a
CPU-only machine and breaks on the first machine with a GPU.

## Example
```python
import torch

device = "cuda" if torch.cuda.is_available() else "cpu"
weights = torch.randn(4, 2, requires_grad=True).to(device)
scale = torch.ones(2, requires_grad=True).double()
```

## Use instead
```python
import torch

device = "cuda" if torch.cuda.is_available() else "cpu"
weights = torch.randn(4, 2, device=device, requires_grad=True)
scale = torch.ones(2, dtype=torch.float64, requires_grad=True)
```

## Fix safety
For a factory with `requires_grad=True` the fix moves plain conversions into the factory as
keywords before `requires_grad`: `.to(device)` and `.cuda()` become `device=...`;
`.to(torch.float64)`, `.double()`, `.float()`, `.half()` and `.bfloat16()` become `dtype=...`.
It is safe for factories whose values do not depend on where and in which precision they are
made (`zeros`, `ones`, `empty`, `eye`; also `full`, `tensor`, `arange`, `linspace` when only
the device changes). It is unsafe for random factories (a generator draws other numbers on
another device or in another dtype) and for dtype changes of `full`, `tensor`, `arange`,
`linspace` (their values are rounded differently). With `.requires_grad_()` in the chain, the
fix moves it to the end, which is safe. Conversions with other arguments (`non_blocking=`,
`.cuda(1)`, `.type(...)`) get no fix, and neither does a name rebound to a conversion in a
later statement (where the factory call should take the device or dtype is the user's
choice).
"""

_FACTORIES = frozenset(
    {
        "randn",
        "rand",
        "randint",
        "normal",
        "zeros",
        "ones",
        "empty",
        "full",
        "tensor",
        "arange",
        "linspace",
        "logspace",
        "eye",
        "randn_like",
        "rand_like",
        "zeros_like",
        "ones_like",
        "empty_like",
        "full_like",
    }
)
_SAME_VALUES_ANYWHERE = frozenset({"zeros", "ones", "empty", "eye"})
_SAME_VALUES_ON_ANY_DEVICE = _SAME_VALUES_ANYWHERE | {"full", "tensor", "arange", "linspace"}
_DTYPES = {
    "torch.float64": "float64",
    "torch.double": "float64",
    "torch.float32": "float32",
    "torch.float": "float32",
    "torch.float16": "float16",
    "torch.half": "float16",
    "torch.bfloat16": "bfloat16",
}
_DTYPE_METHODS = {
    "double": "torch.float64",
    "float": "torch.float32",
    "half": "torch.float16",
    "bfloat16": "torch.bfloat16",
}
# `.type(...)` targets: (dtype, device) as `.to(...)` would spell them
_TENSOR_TYPES = {
    "torch.FloatTensor": ("torch.float32", '"cpu"'),
    "torch.DoubleTensor": ("torch.float64", '"cpu"'),
    "torch.HalfTensor": ("torch.float16", '"cpu"'),
    "torch.cuda.FloatTensor": ("torch.float32", '"cuda"'),
    "torch.cuda.DoubleTensor": ("torch.float64", '"cuda"'),
    "torch.cuda.HalfTensor": ("torch.float16", '"cuda"'),
}


@dataclass(frozen=True)
class Conversion:
    """One `.to(...)`-like call of the chain: what it sets, as keywords the factory takes."""

    call: cst.Call
    device: str | None = None  # source text of the device it moves to
    dtype: str | None = None  # source text of the dtype it casts to
    fixable: bool = True


def check(context: Context) -> Iterator[Violation]:
    for node in context.listed.of_type(cst.Assign, cst.AnnAssign):
        if isinstance(node, cst.Assign) and len(node.targets) == 1:
            target: cst.BaseExpression = node.targets[0].target
        elif isinstance(node, cst.AnnAssign) and node.value is not None:
            target = node.target
        else:
            continue
        name = dotted(target)
        if name is not None and isinstance(node.value, cst.Call):
            violation = _moved_leaf(name, node.value)
            if violation is not None:
                yield violation


def _moved_leaf(name: str, value: cst.Call) -> Violation | None:
    made = _made_leaf(value)
    if made is None:
        return None
    node, factory, chain, requires_grad_at = made
    after = list(reversed(chain[:requires_grad_at]))  # the calls after grad is on, in order
    moves = _moves(after)
    if not moves or not _changes_tensor(node, factory, moves):
        return None
    first = moves[0].call
    method = _method(first)
    message = (
        f"`.{method}({'...' if first.args else ''})` copies the tensor `{_source(node)}` made to require grad: `{name}` is "
        f"not a leaf, its `.grad` stays None after backward and an optimizer refuses it; create "
        f"the tensor with the device and dtype it needs"
    )
    fix = _fix(value, node, factory, moves, requires_grad_at < len(chain))
    assert isinstance(first.func, cst.Attribute)
    return Violation(CODE, first.func.attr, message, fix=fix)


def _made_leaf(value: cst.Call) -> tuple[cst.Call, str, list[cst.Call], int] | None:
    """For a torch factory made to require grad (`torch.randn(3, requires_grad=True)...`,
    `torch.randn(3).requires_grad_()...`): the factory call, its name, the method calls
    chained on it (outermost first) and the index among them of `.requires_grad_()` (their
    number when the factory is given `requires_grad=True`)."""
    node, chain = _method_chain(value)
    if not isinstance(node, cst.Call):
        return None
    factory = _factory_name(node)
    if factory is None:
        return None
    made_grad = argument(node, None, "requires_grad")
    requires_grad_at = len(chain)
    if made_grad is None or code_of(made_grad) != "True":
        found = [i for i, c in enumerate(chain) if _method(c) == "requires_grad_"]
        if made_grad is not None or not found or not _enables_grad(chain[found[0]]):
            return None
        requires_grad_at = found[0]
    return node, factory, chain, requires_grad_at


def precheck(tree: ast.AST) -> bool:
    """Whether CPython's tree of a module makes a leaf as `_made_leaf` reads it, before libcst
    parses it: a torch factory given `requires_grad=True`, or `.requires_grad_()` (or with
    `True`) on a chain of method calls that starts from one."""
    stack = [tree]
    while stack:
        node = stack.pop()
        stack.extend(child_nodes(node))
        if type(node) is not ast.Call:
            continue
        call = cast(ast.Call, node)
        if _torch_factory(call):
            if any(k.arg == "requires_grad" and _true(k.value) for k in call.keywords):
                return True
        elif type(call.func) is ast.Attribute and call.func.attr == "requires_grad_":
            given = [*call.args, *(k.value for k in call.keywords)]
            if given and not _true(given[0]):
                continue
            chained = call.func.value
            while type(chained) is ast.Call and type(chained.func) is ast.Attribute:
                if _torch_factory(chained):
                    return True
                chained = chained.func.value
    return False


def _torch_factory(call: ast.Call) -> bool:
    func = call.func
    return (
        type(func) is ast.Attribute
        and func.attr in _FACTORIES
        and type(func.value) is ast.Name
        and func.value.id == "torch"
    )


def _true(value: ast.expr) -> bool:
    return type(value) is ast.Constant and value.value is True


def _method_chain(value: cst.Call) -> tuple[cst.BaseExpression, list[cst.Call]]:
    """What `value`'s chain of method calls starts from, and the calls, outermost first:
    `w`, [`.double()`, `.to(device)`] of `w.to(device).double()`; a `torch.*` call starts a
    chain (`torch.randn(3)`, not `torch` with `.randn(3)`)."""
    chain: list[cst.Call] = []
    node: cst.BaseExpression = value
    while isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
        if (dotted(node.func) or "").startswith("torch."):
            break
        chain.append(node)
        node = node.func.value
    return node, chain


def _moves(calls: list[cst.Call]) -> list[Conversion]:
    """The calls (in order) as conversions; empty when one of them is something else."""
    conversions = [_conversion(c) for c in calls]
    return [c for c in conversions if c is not None] if None not in conversions else []


@dataclass(frozen=True)
class _Leaf:
    """`name` holds the leaf that `call`, a call of the torch factory `factory`, made."""

    name: str
    factory: str
    call: cst.Call = field(compare=False, hash=False)


class _RebindingMove(Tracker):
    """The two-statement form, on the paths of the training code: `w` made a leaf that
    requires grad, later `w = w.to(device)` (on some path: `if use_cuda: w = w.cuda()`)."""

    code = CODE

    def __init__(self, context: Context):
        self.context = context

    def start(self) -> frozenset[_Leaf]:
        return frozenset()

    def assign(
        self, value: frozenset[_Leaf], statement: cst.CSTNode, targets: set[str], at: At
    ) -> frozenset[_Leaf]:
        held = {leaf.name: leaf for leaf in value if leaf.name in targets}
        made = None
        written = dotted(statement.targets[0].target) if isinstance(statement, cst.Assign) else None
        if written is not None and written.split(".")[0] in at.names.aliases:
            # a helper's parameter bound anew: a name of the helper's, the caller's stays
            return frozenset(leaf for leaf in value if leaf.name not in targets)
        if isinstance(statement, cst.Assign) and len(targets) == 1:
            (target,) = targets
            if isinstance(statement.value, cst.Call):
                moved = _rebinding_move(statement.value, held.get(target), at)
                if moved is not None and not at.grad_off:
                    at.report(Report(self.code, (id(statement),), (statement, held[target], moved)))
                found = _made_leaf(statement.value)
                if found is not None and found[3] == len(found[2]):  # nothing chained after
                    made = _Leaf(target, found[1], found[0])
        if not held and made is None:
            return value
        kept = frozenset(leaf for leaf in value if leaf.name not in targets)
        return kept | {made} if made is not None else kept

    def join(self, values: list[frozenset[_Leaf]]) -> frozenset[_Leaf]:
        return common(values)

    def finish(self, reports: list[Report]) -> Iterator[Violation]:
        for report in reports:
            statement, leaf, first = report.data
            method = _method(first.call)
            message = (
                f"`.{method}({'...' if first.call.args else ''})` makes a copy of `{leaf.name}`, "
                f"the tensor `{_source(leaf.call)}` made to require grad, and the name now holds "
                f"the copy: it is not a leaf, its `.grad` stays None after backward and an "
                f"optimizer refuses it; create the tensor with the device and dtype it needs"
            )
            assert isinstance(first.call.func, cst.Attribute)
            yield Violation(CODE, first.call.func.attr, message)


def _rebinding_move(value: cst.Call, leaf: _Leaf | None, at: At) -> Conversion | None:
    """`w.to(device)` (a chain of conversions of the name itself) that makes a new tensor
    from the leaf `w` holds: its first conversion."""
    if leaf is None:
        return None
    node, chain = _method_chain(value)
    if at.names.resolve(dotted(node) or "") != leaf.name:
        return None
    moves = _moves(list(reversed(chain)))
    if not moves or not _changes_tensor(leaf.call, leaf.factory, moves):
        return None
    return moves[0]


def _factory_name(call: cst.Call) -> str | None:
    name = dotted(call.func) or ""
    head, _, tail = name.rpartition(".")
    return tail if head == "torch" and tail in _FACTORIES else None


def _method(call: cst.Call) -> str:
    return call.func.attr.value if isinstance(call.func, cst.Attribute) else ""


def _enables_grad(call: cst.Call) -> bool:
    return not call.args or code_of(call.args[0].value) == "True"


def _conversion(call: cst.Call) -> Conversion | None:
    """The call as a move or a cast, or None when it is anything else (a view, arithmetic...)."""
    method = _method(call)
    if method in _DTYPE_METHODS:
        return Conversion(call, dtype=_DTYPE_METHODS[method], fixable=not call.args)
    if method == "cuda":
        return Conversion(call, device='"cuda"', fixable=not call.args)
    if method == "cpu":
        return Conversion(call, device='"cpu"', fixable=not call.args)
    if method == "type" and len(call.args) == 1:
        text = code_of(call.args[0].value).strip("'\"")
        if text not in _TENSOR_TYPES:
            return None
        cast_to, moved_to = _TENSOR_TYPES[text]
        return Conversion(call, device=moved_to, dtype=cast_to, fixable=False)
    if method != "to":
        return None
    device: str | None = None
    dtype: str | None = None
    fixable = True
    for arg in call.args:
        text = _source(arg.value)
        kind = arg.keyword.value if arg.keyword is not None else _kind_of(arg.value)
        if kind == "device":
            device = text
        elif kind == "dtype":
            dtype = text
        else:
            return None if arg.keyword is None else Conversion(call, device, dtype, False)
    return Conversion(call, device, dtype, fixable) if (device or dtype) else None


def _kind_of(value: cst.BaseExpression) -> str | None:
    """Whether a positional argument of `.to(...)` is a device or a dtype, when that is clear."""
    text = code_of(value)
    if text in _DTYPES:
        return "dtype"
    if isinstance(value, cst.SimpleString) or text.startswith("torch.device("):
        return "device"
    last = text.rsplit(".", 1)[-1].lower()
    if "dtype" in last:
        return "dtype"
    if "device" in last or last in ("dev", "cuda", "gpu"):
        return "device"
    return None


def _changes_tensor(factory_call: cst.Call, factory: str, moves: list[Conversion]) -> bool:
    """Whether some conversion of the chain makes a new tensor (rather than returning itself).

    Dtypes and devices are tracked as far as they are known; an unknown one never counts.
    """
    like = factory.endswith("_like")
    dtype_kw = argument(factory_call, None, "dtype")
    dtype = _dtype(code_of(dtype_kw)) if dtype_kw is not None else (None if like else "float32")
    device_kw = argument(factory_call, None, "device")
    device = _device(code_of(device_kw)) if device_kw is not None else (None if like else "cpu")
    for move in moves:
        if move.dtype is not None:
            target = _dtype(move.dtype.replace(" ", ""))
            if None not in (dtype, target) and target != dtype:
                return True
            dtype = target
        if move.device is not None:
            target = _device(move.device.replace(" ", ""))
            # a device held in a variable is a move except when it happens to be the CPU
            if device == "cpu" and target != "cpu":
                return True
            if None not in (device, target) and target != device:
                return True
            device = target
    return False


def _dtype(text: str) -> str | None:
    return _DTYPES.get(text)


def _device(text: str) -> str | None:
    """`cpu`, `cuda` or `cuda:N` for a literal device, None for one held in a variable."""
    for quote in "\"'":
        text = text.replace(f"torch.device({quote}", quote)
    text = text.rstrip(")").strip("\"'")
    return text if text in ("cpu", "cuda") or text.startswith("cuda:") else None


def _fix(
    value: cst.Call,
    factory_call: cst.Call,
    factory: str,
    moves: list[Conversion],
    by_method: bool,
) -> Rewrite | None:
    if by_method:
        return _requires_grad_last(value)
    if not all(m.fixable for m in moves):
        return None
    keywords: dict[str, str] = {}
    for move in moves:
        for key, text in (("device", move.device), ("dtype", move.dtype)):
            if text is not None:
                keywords[key] = text
    if any(argument(factory_call, None, key) is not None for key in keywords):
        return None
    new_args = [
        cst.Arg(
            value=cst.parse_expression(text),
            keyword=cst.Name(key),
            equal=cst.AssignEqual(
                whitespace_before=cst.SimpleWhitespace(""),
                whitespace_after=cst.SimpleWhitespace(""),
            ),
            comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")),
        )
        for key, text in keywords.items()
    ]
    args = list(factory_call.args)
    at = next(i for i, a in enumerate(args) if a.keyword and a.keyword.value == "requires_grad")
    new_call = factory_call.with_changes(args=[*args[:at], *new_args, *args[at:]])
    if "dtype" in keywords:
        safe = factory in _SAME_VALUES_ANYWHERE
    else:
        safe = factory in _SAME_VALUES_ON_ANY_DEVICE
    words = ", ".join(f"{k}={v}" for k, v in keywords.items())

    def apply(module: cst.Module) -> cst.Module | None:
        result = module.deep_replace(value, new_call)
        return result if isinstance(result, cst.Module) else None

    return Rewrite(
        f"Create the tensor with `{words}` instead of converting it",
        apply,
        "safe" if safe else "unsafe",
    )


def _requires_grad_last(value: cst.Call) -> Rewrite:
    """`torch.randn(3).requires_grad_().to(device)` -> `torch.randn(3).to(device).requires_grad_()`."""

    class Move(cst.CSTTransformer):
        def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
            if _method(updated) == "requires_grad_" and isinstance(updated.func, cst.Attribute):
                return updated.func.value
            return updated

    stripped = value.visit(Move())
    assert isinstance(stripped, cst.BaseExpression)
    new = cst.Call(func=cst.Attribute(value=stripped, attr=cst.Name("requires_grad_")))

    def apply(module: cst.Module) -> cst.Module | None:
        result = module.deep_replace(value, new)
        return result if isinstance(result, cst.Module) else None

    return Rewrite("Call `.requires_grad_()` after the conversion", apply, "safe")


def _source(node: cst.CSTNode) -> str:
    return cst.Module(body=[]).code_for_node(node)


# what a finding needs in the code: a torch factory, grad turned on by its keyword or by
# `.requires_grad_()`, and a conversion (`_conversion`'s methods)
_MOVES = ("to", "cuda", "cpu", "type", *_DTYPE_METHODS)
_TRIGGER = (  # the rarest words first: the text test of every file stops at the first miss
    ("requires_grad=True", "requires_grad_("),
    tuple(f".{method}(" for method in _MOVES),
    tuple(f"torch.{factory}(" for factory in sorted(_FACTORIES)),
)

RULE = Rule(
    code=CODE,
    name="moved-leaf",
    summary="A tensor made with `requires_grad=True` is moved or cast, and its name holds the copy",
    fixable=True,
    triggers=(_TRIGGER,),
    docs=DOCS,
    check=check,
    tracker=_RebindingMove,
    precheck=precheck,
)
