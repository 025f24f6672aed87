"""GL108 data-attribute: `.data` used to update parameters and gradients or to read a loss."""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Union, cast

import libcst as cst

from gradlint.analysis.positions import Positions
from gradlint.analysis.syntax import code_of, dotted, last_name
from gradlint.analysis.torch_api import grad_enabled, makes_leaf, torch_no_grad_spelling
from gradlint.fixes import wrap_in_with
from gradlint.rules.base import Context, Rewrite, Rule, Violation
from gradlint.tree import Tree
from gradlint.triggers import child_nodes

CODE = "GL108"
DOCS = """## What it does
Finds `.data` used on a tensor that autograd tracks, where the tensor itself is the right
thing to use:

- an update or reset through `.data`: an in-place method (`w.data.sub_(lr * w.grad)`,
  `p.data.add_(...)`, `p.data.copy_(...)`, `w.grad.data.zero_()`), an assignment or augmented
  assignment (`w.data -= ...`, `w.data[0] = ...`);
- a loss read through `.data`: `loss.data[0]`, `loss.data.item()`, `loss.data.numpy()`,
  `loss.data.cpu()`, `loss.data.tolist()`.

Only tensors gradlint knows to be tracked count: a tensor created with `requires_grad=True`
(or `.requires_grad_()`, `x.requires_grad = True`, `nn.Parameter`) in the same function, class
(for `self.x`) or at module level, the variable of a loop over `model.parameters()`,
`named_parameters()` or an optimizer's `group["params"]`, `model.<layer>.weight`/`.bias` of a
model the module uses, any `x.grad` (for `x.grad.data`), and the receiver of a `.backward()`
call (a loss). `.data` of anything else (`batch.data`, `dataset.data`, a NumPy array's
`.data`, `m.weight` of `for m in model.modules()`) is not reported, nor is reading a parameter
through `.data` to copy or log it (`p.data.clone()`, `p.data.norm()`).

Initialisation is not reported either: writes in `__init__`, `reset_parameters` (or
`_reset_parameters`, `reset_parameters2`, `reset_params`), a function whose name contains
`init`, or a method that only those call (`self.reset()` from `__init__`, and nothing else in
the module mentions `.reset`): a model being built has no graph waiting for its backward. Nor is
a plain assignment `p.data = other` (`p.data = p.data.half()`, `p.data = shared_buffer` as
DDP and FSDP do): it rebinds the tensor to other storage, of any dtype, device or shape, which
nothing but `.data` can do, and `copy_` would not be the same.

Nothing is reported inside `with torch.no_grad():` (or `inference_mode()`,
`set_grad_enabled(False)`), in a function decorated with `@torch.no_grad()`, or in a function
that is only called under `no_grad`: there the code already says it is not part of the graph,
and `.data` is redundant rather than misleading. It still skips the version counter there, but
an update under `no_grad` normally runs between graphs, not while one is waiting for its
backward.

Related: TorchFix (0.7.0) has no rule about `.data`.

## Why is this bad?
`.data` is a pre-0.4 idiom: it returns the tensor's values detached from autograd *and* from
its version counter. A change made through it is invisible to autograd: when a graph that
saved the tensor is backwarded afterwards, it silently uses the new values and produces
wrong gradients, where `with torch.no_grad(): w.sub_(...)` makes the backward raise
"modified by an inplace operation". For parameters the supported way is `torch.no_grad()`
with the tensor itself; for gradients `.grad.zero_()` or `.grad = None`; for a loss
`loss.item()` (and `loss.detach()` for a tensor). `loss.data[0]` comes from the days when a
loss had shape `(1,)`: a loss is 0-dimensional now and indexing it raises IndexError.

## Example
```python
import torch

w = torch.randn(3, requires_grad=True)
for step in range(10):
    loss = (w**2).sum()
    loss.backward()
    w.data.sub_(0.1 * w.grad)
    w.grad.data.zero_()
    print(loss.data.item())
```

## Use instead
```python
import torch

w = torch.randn(3, requires_grad=True)
for step in range(10):
    loss = (w**2).sum()
    loss.backward()
    with torch.no_grad():
        w.sub_(0.1 * w.grad)
    w.grad.zero_()
    print(loss.item())
```

## Fix safety
- `x.grad.data.<method>_(...)` (and `x.grad.data op= ...`, `x.grad.data[...] = ...`) loses
  its `.data`. Safe when the arguments are constants and the module never passes
  `create_graph=True`: a gradient then does not require grad, and the only difference is the
  version counter, which nothing holding a gradient checks. Otherwise unsafe (a gradient
  argument that requires grad would put `x.grad` into a graph).
- An update of a parameter (`w.data.sub_(...)`, `w.data -= ...`, `w.data[i] = ...`) is
  rewritten to the tensor itself inside `with torch.no_grad():` (consecutive updates
  together). Unsafe: the values are the same, but autograd now sees the change, so a backward
  through a graph that saved the old values raises instead of computing wrong gradients.
- `loss.data.item()` and `loss.data.tolist()` become `loss.item()` and `loss.tolist()`,
  `loss.data.numpy()` becomes `loss.detach().numpy()`: safe, the same values.
  `loss.data.cpu()` becomes `loss.detach().cpu()`: safe when the result is only converted
  (`.numpy()`, `.item()`, `.tolist()`), otherwise unsafe (the result now shares the loss's
  version counter).
- `loss.data[0]` becomes `loss.item()`: unsafe. For a 0-dim loss the old code raised
  IndexError; for a loss of shape `(1,)` it gave a 0-dim tensor where `.item()` gives a float.
"""

# In-place methods that are not updates of the values.
_NOT_UPDATES = frozenset({"requires_grad_", "share_memory_", "retain_grad", "pin_memory_"})
_LOSS_READS = frozenset({"item", "tolist", "numpy", "cpu"})
_CONVERSIONS = frozenset({"item", "tolist", "numpy"})
_PARAMETER_METHODS = frozenset({"parameters", "named_parameters"})
_LAYER_TENSORS = frozenset({"weight", "bias"})


@dataclass(frozen=True)
class _Use:
    """One `.data` that GL108 reports: where, how, and what proves the tensor is tracked."""

    data: cst.Attribute  # the `x.data` expression
    reported: cst.CSTNode  # the expression the finding points at
    kind: str  # "update", "grad", "read"
    evidence: Evidence
    small: cst.BaseSmallStatement | None  # the statement of an update


def check(context: Context) -> Iterator[Violation]:
    if "set_grad_enabled(False)" in context.text.replace(" ", ""):
        return  # gradient recording may be off for the whole script
    datas: list[cst.Attribute] = []
    calls: dict[str, list[cst.Call]] = {}
    assignments: list[cst.Assign | cst.AnnAssign] = []
    listed = context.listed
    for node in listed.of_type(cst.Assign, cst.AnnAssign, cst.Attribute, cst.Call):
        if isinstance(node, (cst.Assign, cst.AnnAssign)):
            assignments.append(node)
        elif isinstance(node, cst.Attribute) and node.attr.value == "data":
            if dotted(node.value) not in (None, "torch.utils", "utils"):  # torch.utils.data
                datas.append(node)
        elif isinstance(node, cst.Call):
            name = last_name(node.func)
            if name is not None:
                calls.setdefault(name, []).append(node)
    if not datas:
        return
    tree = context.tree
    tracked, losses = _tracked(context, assignments, calls)
    uses: list[_Use] = []
    for data in datas:
        use = _classify(data, tree, tracked, losses, context)
        if use is not None and grad_enabled(use.data, tree, calls, certainly=False):
            uses.append(use)
    spelling = torch_no_grad_spelling(context.module)
    wrappable = {id(u.small): u for u in uses if _wrappable(u, tree)}
    for use in uses:
        yield _violation(context, use, wrappable, spelling)


def precheck(tree: ast.AST) -> bool:
    """Whether CPython's tree of a module holds a `.data` this rule may report, before libcst
    parses it: a write through `.data` (an update method, an assignment to it or into it)
    outside initialisation, any write through `x.grad.data`, or a read through `.data` in a
    module that calls a backward (only a backwarded loss's reads are reported)."""
    reads = backward = False
    stack: list[tuple[ast.AST, ast.AST | None, str | None]] = [(tree, None, None)]
    while stack:
        node, parent, function = stack.pop()
        kind = type(node)
        if kind is ast.FunctionDef or kind is ast.AsyncFunctionDef:
            function = node.name  # type: ignore[attr-defined]
        elif kind is ast.Attribute:
            attribute = cast(ast.Attribute, node)
            backward = backward or attribute.attr == "backward"
            if attribute.attr == "data" and _names_only(attribute.value):
                use = _use_through(attribute, parent)
                grad = type(attribute.value) is ast.Attribute and attribute.value.attr == "grad"
                if use == "write" and (grad or not _initialiser(function)):
                    return True
                reads = reads or use == "read"
        stack.extend((child, node, function) for child in child_nodes(node))
    return reads and backward


def _names_only(node: ast.expr) -> bool:
    """`a.b.c`: what `dotted` reads in libcst's tree."""
    while type(node) is ast.Attribute:
        node = node.value  # type: ignore[attr-defined]
    return type(node) is ast.Name


def _use_through(data: ast.Attribute, parent: ast.AST | None) -> str | None:
    """How `x.data` is used, as `_classify` tells it apart: "write", "read" (of a loss, if
    it is one) or None."""
    if type(parent) is ast.Attribute:
        method = parent.attr  # type: ignore[attr-defined]
        return "write" if _is_update_method(method) else "read" if method in _LOSS_READS else None
    if type(parent) is ast.Subscript:
        return "write" if type(parent.ctx) is ast.Store else "read"  # type: ignore[attr-defined]
    # `p.data += ...`; `p.data = other` rebinds the tensor and is not reported (`_rebinds`)
    return "write" if type(parent) is ast.AugAssign else None


class _Since:
    """`requires grad since line N`, with N looked up only if a finding says it: positions cost
    as much as printing the module."""

    def __init__(self, why: str, node: cst.CSTNode, positions: Positions):
        self.why, self.node, self.positions = why, node, positions

    def __str__(self) -> str:
        return f"{self.why} {self.positions.of(self.node)[0]}"


Evidence = Union[str, _Since]
# (scope, name) -> why the name is known to be tracked (or a loss); see `_scope`
Known = dict[tuple[int, str], Evidence]


def _tracked(
    context: Context,
    assignments: list[cst.Assign | cst.AnnAssign],
    calls: dict[str, list[cst.Call]],
) -> tuple[Known, Known]:
    """Tensors that require grad and backwarded losses, by the scope that names them."""
    tracked: Known = {}
    losses: Known = {}
    positions = context.positions
    tree = context.tree

    def note(known: Known, node: cst.CSTNode, name: str, why: str) -> None:
        known.setdefault((_scope(node, name, tree), name), _Since(why, node, positions))

    for node in assignments:
        if isinstance(node, cst.Assign):
            pairs = [(t.target, node.value) for t in node.targets]
        elif node.value is not None:
            pairs = [(node.target, node.value)]
        else:
            continue
        for target, value in pairs:
            name = dotted(target) or ""
            if name and makes_leaf(value):
                note(tracked, node, name, "requires grad since line")
            elif name.endswith(".requires_grad") and _is_true(value):
                note(tracked, node, name[: -len(".requires_grad")], "requires grad since line")
    for call in calls.get("requires_grad_", []):
        receiver = _receiver(call)
        if receiver is not None and (not call.args or _is_true(call.args[0].value)):
            note(tracked, call, receiver, "requires grad since line")
    for call in calls.get("backward", []):
        receiver = _receiver(call)
        if receiver is not None and not receiver.endswith(".grad"):
            note(losses, call, receiver, "backwarded at line")
    return tracked, losses


def _receiver(call: cst.Call) -> str | None:
    return dotted(call.func.value) if isinstance(call.func, cst.Attribute) else None


def _scope(node: cst.CSTNode, name: str, tree: Tree) -> int:
    """Where a name lives: its function (0 for the module); `self.x` lives in its class."""
    attribute = name.startswith("self.")
    for ancestor in tree.ancestors(node):
        if (
            isinstance(ancestor, cst.ClassDef)
            if attribute
            else isinstance(ancestor, cst.FunctionDef)
        ):
            return id(ancestor)
    return 0


def _lookup(known: Known, name: str, node: cst.CSTNode, tree: Tree) -> Evidence | None:
    """What `known` says of `name` as seen from `node`: its own scope, else the module's."""
    return known.get((_scope(node, name, tree), name)) or known.get((0, name))


def _is_true(value: cst.BaseExpression) -> bool:
    return isinstance(value, cst.Name) and value.value == "True"


def _classify(
    data: cst.Attribute,
    tree: Tree,
    tracked: Known,
    losses: Known,
    context: Context,
) -> _Use | None:
    base = dotted(data.value)
    if base is None:
        return None
    parent = tree.parent.get(id(data))
    grand = tree.parent.get(id(parent)) if parent is not None else None
    small: cst.BaseSmallStatement | None = None
    reported: cst.CSTNode = data
    written = False
    read: str | None = None  # the method or "[]" a loss is read with
    if isinstance(parent, cst.Attribute) and isinstance(grand, cst.Call) and grand.func is parent:
        method = parent.attr.value
        if _is_update_method(method):
            written, reported = True, grand
            statement = tree.parent.get(id(grand))
            small = statement if isinstance(statement, cst.Expr) else None
        elif method in _LOSS_READS:
            read, reported = method, grand
    elif isinstance(parent, cst.Subscript) and parent.value is data:
        holder = tree.parent.get(id(parent))
        if _is_target(holder, parent):
            written, reported = True, parent
            small = _statement_of_target(holder, tree)
        else:
            read, reported = "[]", parent
    elif _is_target(parent, data):
        written = True
        small = _statement_of_target(parent, tree)
        reported = small if small is not None else data
    if written:
        if _rebinds(small, data):
            return None
        if base.endswith(".grad"):
            return _Use(data, reported, "grad", "a gradient", small)
        if _initialising(data, context):
            return None
        evidence = _evidence(base, data, tree, tracked, losses, context)
        if evidence is None:
            return None
        return _Use(data, reported, "update", evidence, small)
    loss = _lookup(losses, base, data, tree) if read is not None else None
    if loss is not None and not tree.shadowed(data, base):
        return _Use(data, reported, "read", loss, None)
    return None


def _initialising(node: cst.CSTNode, context: Context) -> bool:
    """Inside `__init__`, `reset_parameters` or an `*init*` function, or a method only
    `__init__` calls (`self.reset()` of a noisy layer): a model being built has no graph
    waiting for a backward."""
    for ancestor in context.tree.ancestors(node):
        if isinstance(ancestor, cst.FunctionDef):
            name = ancestor.name.value
            return _initialiser(name) or _called_only_while_initialising(name, context)
    return False


def _called_only_while_initialising(method: str, context: Context) -> bool:
    """Every mention of `.method` in the module is inside an initialiser, and one of them is a
    call `self.method()` (a method called from elsewhere, or another module, is not)."""
    called = False
    for node in context.listed.of_type(cst.Attribute):
        assert isinstance(node, cst.Attribute)
        if node.attr.value != method:
            continue
        function = next(
            (a for a in context.tree.ancestors(node) if isinstance(a, cst.FunctionDef)), None
        )
        if function is None or not _initialiser(function.name.value):
            return False
        parent = context.tree.parent.get(id(node))
        called = called or (
            dotted(node.value) == "self" and isinstance(parent, cst.Call) and parent.func is node
        )
    return called


def _initialiser(function: str | None) -> bool:
    """`__init__`, `init_weights`, `reset_parameters` and its variants (`_reset_parameters`,
    `reset_parameters2`, `reset_params`)."""
    if function is None:
        return False
    return function.lstrip("_").startswith("reset_param") or "init" in function.lower()


def _rebinds(small: cst.BaseSmallStatement | None, data: cst.Attribute) -> bool:
    """`p.data = other`: the tensor is rebound to other storage (a new dtype, device or shape,
    a buffer shared with another tensor, as DDP and FSDP do), which nothing but `.data`
    assignment does; `copy_` is no equivalent, so this is not reported."""
    return isinstance(small, cst.Assign) and any(t.target is data for t in small.targets)


def _is_update_method(method: str) -> bool:
    return method.endswith("_") and not method.startswith("_") and method not in _NOT_UPDATES


def _is_target(holder: cst.CSTNode | None, node: cst.CSTNode) -> bool:
    """Whether `node` is assigned to (`node = ...`, `node += ...`)."""
    if isinstance(holder, cst.AssignTarget):
        return holder.target is node
    if isinstance(holder, cst.AugAssign):
        return holder.target is node
    return False


def _statement_of_target(holder: cst.CSTNode | None, tree: Tree) -> cst.BaseSmallStatement | None:
    if isinstance(holder, cst.AugAssign):
        return holder
    if isinstance(holder, cst.AssignTarget):
        statement = tree.parent.get(id(holder))
        return statement if isinstance(statement, cst.Assign) else None
    return None


def _evidence(
    base: str,
    data: cst.Attribute,
    tree: Tree,
    tracked: Known,
    losses: Known,
    context: Context,
) -> Evidence | None:
    """Why `base` is a tensor that requires grad, or None when gradlint cannot tell."""
    loop = _parameter_loop(base, data, tree, tracked)
    if loop is not None:
        return loop
    if tree.shadowed(data, base):
        return None
    leaf = _lookup(tracked, base, data, tree)
    if leaf is not None:
        return leaf
    loss = _lookup(losses, base, data, tree)
    if loss is not None:
        return f"a loss {loss}"
    head, _, tail = base.rpartition(".")
    if tail in _LAYER_TENSORS and head:
        models = context.knowledge.models
        prefixes = [head.rsplit(".", n)[0] for n in range(head.count(".") + 1)]
        model = next((p for p in prefixes if p in models), None)
        if model is not None:
            return f"a parameter of `{model}`"
    return None


def _parameter_loop(base: str, data: cst.Attribute, tree: Tree, tracked: Known) -> str | None:
    """`for p in model.parameters()`, `for n, p in m.named_parameters()`, `for p in group["params"]`
    (of `for group in opt.param_groups`) or `for p in [w, b]` of tracked tensors."""
    for ancestor in tree.ancestors(data):
        if isinstance(ancestor, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            return None
        if not isinstance(ancestor, cst.For):
            continue
        target: cst.BaseExpression = ancestor.target
        if isinstance(target, cst.Tuple) and target.elements:
            target = target.elements[-1].value
        if dotted(target) != base:
            continue
        source = ancestor.iter
        if isinstance(source, cst.Call) and last_name(source.func) == "list" and source.args:
            source = source.args[0].value
        if isinstance(source, cst.Call) and isinstance(source.func, cst.Attribute):
            if source.func.attr.value in _PARAMETER_METHODS:
                return f"a parameter from `{code_of(source)}`"
        if isinstance(source, (cst.List, cst.Tuple)) and source.elements:
            if all(_lookup(tracked, dotted(e.value) or "", data, tree) for e in source.elements):
                return f"from `{code_of(source)}`, tensors that require grad"
        if _param_group_params(source, ancestor, tree):
            return f"a parameter from an optimizer's `{code_of(source)}`"
        return None
    return None


def _param_group_params(source: cst.BaseExpression, loop: cst.For, tree: Tree) -> bool:
    """`group["params"]` where `group` is the variable of `for group in opt.param_groups`."""
    if not isinstance(source, cst.Subscript) or len(source.slice) != 1:
        return False
    index = source.slice[0].slice
    if not isinstance(index, cst.Index) or code_of(index.value) not in ('"params"', "'params'"):
        return False
    group = dotted(source.value)
    for ancestor in tree.ancestors(loop):
        if isinstance(ancestor, cst.For) and dotted(ancestor.target) == group:
            return last_name(ancestor.iter) == "param_groups"
    return False


def _wrappable(use: _Use, tree: Tree) -> bool:
    """An update that `with torch.no_grad():` and the tensor itself can say: the statement is
    alone on its line (and `x.data = ...` has a single target, for `x.copy_(...)`)."""
    if use.kind != "update" or use.small is None:
        return False
    if isinstance(use.small, cst.Assign) and len(use.small.targets) != 1:
        return False
    line = tree.parent.get(id(use.small))
    return isinstance(line, cst.SimpleStatementLine) and len(line.body) == 1


def _violation(
    context: Context, use: _Use, wrappable: dict[int, _Use], spelling: str | None
) -> Violation:
    at = context.positions.of(use.reported)[0]
    base = code_of(use.data.value)
    shown = _source(use.reported)
    trail = (f"`{base}`: {use.evidence}", f"`{shown}` at line {at}")
    fix: Rewrite | None = None
    if use.kind == "grad":
        better = _source(use.reported.deep_replace(use.data, use.data.value))
        message = (
            f"`{shown}` changes the gradient `{base}` through `.data`, out of autograd's sight; "
            f"write `{better}`"
        )
        fix = Rewrite(
            f"Use `{base}` instead of `{base}.data`",
            _dropper(use.data),
            _grad_safety(use, context),
        )
        return Violation(CODE, use.reported, message, trail, fix)
    if use.kind == "update":
        message = (
            f"`{shown}` updates `{base}` ({use.evidence}) through `.data`: autograd "
            f"does not see the change, so a graph that saved `{base}` backpropagates with the new "
            f"values and no error; update `{base}` itself inside `with torch.no_grad():`"
        )
        if use.small is not None and id(use.small) in wrappable and spelling is not None:
            run = _run(context.tree, use.small, wrappable)
            fix = Rewrite(
                f"Update `{base}` itself inside `with {spelling}:`",
                _wrapper(run, spelling),
                "unsafe",
            )
        return Violation(CODE, use.reported, message, trail, fix)
    return _read_violation(context, use, trail)


def _read_violation(context: Context, use: _Use, trail: tuple[str, ...]) -> Violation:
    base = code_of(use.data.value)
    shown = _source(use.reported)
    reported = use.reported
    if isinstance(reported, cst.Subscript):
        message = (
            f"`{shown}` reads the loss `{base}` ({use.evidence}) through `.data`: a loss is 0-dim, so indexing it "
            f"raises IndexError; use `{base}.item()`"
        )
        index = reported.slice[0].slice if len(reported.slice) == 1 else None
        if isinstance(index, cst.Index) and code_of(index.value) == "0":
            item = cst.Call(func=cst.Attribute(value=use.data.value, attr=cst.Name("item")))
            fix = Rewrite(f"Replace with `{base}.item()`", _replacer(reported, item), "unsafe")
            return Violation(CODE, reported, message, trail, fix)
        return Violation(CODE, reported, message, trail)
    assert isinstance(reported, cst.Call) and isinstance(reported.func, cst.Attribute)
    method = reported.func.attr.value
    if method in ("item", "tolist"):
        better = f"{base}.{method}()"
        fix = Rewrite(f"Replace with `{better}`", _dropper(use.data), "safe")
    else:
        better = f"{base}.detach().{method}()"
        detached = cst.Call(func=cst.Attribute(value=use.data.value, attr=cst.Name("detach")))
        safe = method == "numpy" or _converted(reported, context.tree)
        fix = Rewrite(
            f"Replace with `{better}`", _replacer(use.data, detached), "safe" if safe else "unsafe"
        )
    message = (
        f"`{shown}` reads the loss `{base}` ({use.evidence}) through `.data`, which also cuts it from autograd's "
        f"version checks; use `{better}`"
    )
    return Violation(CODE, reported, message, trail, fix)


def _converted(call: cst.Call, tree: Tree) -> bool:
    """`x.cpu()` whose result is only turned into numbers: `x.cpu().numpy()`, `.item()`."""
    parent = tree.parent.get(id(call))
    grand = tree.parent.get(id(parent)) if parent is not None else None
    return (
        isinstance(parent, cst.Attribute)
        and isinstance(grand, cst.Call)
        and parent.attr.value in _CONVERSIONS
    )


def _grad_safety(use: _Use, context: Context) -> str:
    if "create_graph" in context.text:
        return "unsafe"
    statement = use.reported
    values: list[cst.BaseExpression] = []
    if isinstance(statement, cst.Call):
        values = [a.value for a in statement.args]
    elif isinstance(use.small, (cst.AugAssign, cst.Assign)):
        values = [use.small.value]
    if isinstance(use.reported, cst.Subscript):
        values.extend(e.slice.value for e in use.reported.slice if isinstance(e.slice, cst.Index))
    return "safe" if all(_constant(v) for v in values) else "unsafe"


def _constant(value: cst.BaseExpression) -> bool:
    if isinstance(value, cst.UnaryOperation):
        return _constant(value.expression)
    return isinstance(value, (cst.Integer, cst.Float)) or (
        isinstance(value, cst.Name) and value.value in ("True", "False", "None")
    )


def _source(node: cst.CSTNode) -> str:
    text = cst.Module([]).code_for_node(node)
    return text if len(text) <= 60 else text[:57] + "..."


def _dropper(data: cst.Attribute) -> Callable[[cst.Module], cst.Module | None]:
    return _replacer(data, data.value)


def _replacer(old: cst.CSTNode, new: cst.CSTNode) -> Callable[[cst.Module], cst.Module | None]:
    def apply(module: cst.Module) -> cst.Module | None:
        result = module.deep_replace(old, new)
        return result if isinstance(result, cst.Module) else None

    return apply


def _run(
    tree: Tree, small: cst.BaseSmallStatement, wrappable: dict[int, _Use]
) -> list[tuple[cst.SimpleStatementLine, _Use]]:
    """The wrappable updates on consecutive lines of one block around `small`, in order."""
    by_line: dict[int, tuple[cst.SimpleStatementLine, _Use]] = {}
    for use in wrappable.values():
        line = tree.parent.get(id(use.small))
        if isinstance(line, cst.SimpleStatementLine):
            by_line[id(line)] = (line, use)
    line = tree.parent.get(id(small))
    block = tree.parent.get(id(line))
    if not isinstance(block, (cst.IndentedBlock, cst.Module)):
        return [by_line[id(line)]]
    body = list(block.body)
    index = next(i for i, s in enumerate(body) if s is line)
    start, end = index, index
    while start > 0 and id(body[start - 1]) in by_line:
        start -= 1
    while end + 1 < len(body) and id(body[end + 1]) in by_line:
        end += 1
    return [by_line[id(s)] for s in body[start : end + 1]]


def _wrapper(
    run: list[tuple[cst.SimpleStatementLine, _Use]], spelling: str
) -> Callable[[cst.Module], cst.Module | None]:
    return lambda module: _wrap(module, run, spelling)


def _wrap(
    module: cst.Module, run: list[tuple[cst.SimpleStatementLine, _Use]], spelling: str
) -> cst.Module | None:
    """The run's statement lines, without `.data`, in one `with torch.no_grad():` block."""
    inner: list[cst.BaseStatement] = []
    for line, use in run:
        fixed = line.deep_replace(use.data, use.data.value)
        if not isinstance(fixed, cst.SimpleStatementLine):
            return None
        inner.append(fixed)
    return wrap_in_with(module, [line for line, _ in run], spelling, inner)


# what makes a tensor tracked (see the docs); a finding needs `.data` and one of them in the text
_TRACKED_WORDS = (
    "backward(",
    "requires_grad",
    "Parameter",
    "Variable",
    "parameters(",
    "param_groups",
    ".grad",
)

RULE = Rule(
    code=CODE,
    name="data-attribute",
    summary="`.data` used to update parameters or gradients, or to read a loss",
    fixable=True,
    triggers=tuple((".data", evidence) for evidence in _TRACKED_WORDS),
    docs=DOCS,
    check=check,
    precheck=precheck,
)
