"""What the calls of torch and of the training libraries mean, answered once for every rule.

Which tensor a backward starts from, what an imported name stands for, which calls make a
leaf that requires grad, what a GradScaler steps, and whether gradient recording is on where a
statement runs: every rule asks here, so that a backward run through a library
(`accelerator.backward(loss)`, Lightning's `self.manual_backward(loss)`, a DeepSpeed engine), a
`Variable` imported under another name or a `@torch.no_grad()` helper means the same to all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import libcst as cst

from gradlint.analysis.syntax import argument, code_of, dotted, last_name, walk
from gradlint.tree import Tree

BACKWARD_FUNCTIONS = frozenset({"backward", "manual_backward"})
# Objects whose `backward(loss)` runs `loss.backward()` for the user: torch.autograd,
# Accelerate's accelerator, Lightning's module, trainer, strategy and Fabric, DeepSpeed engines.
_BACKWARD_PROVIDER = re.compile(r"(?i)(autograd|accelerator|engine|fabric|self|strategy|trainer)$")
_LOSS_KEYWORDS = ("tensors", "loss")  # torch.autograd.backward(tensors=...), backward(loss=...)


def backward_loss(call: cst.Call) -> cst.BaseExpression | None:
    """The tensor a backward call starts from: `loss` of `loss.backward()`,
    `scaler.scale(loss).backward()`, `torch.autograd.backward(loss)`,
    `accelerator.backward(loss)`, `trainer.backward(loss)`, `self.manual_backward(loss)`;
    `model(x).sum()` of `model(x).sum().backward()`. None for a call that is no backward, or a
    library's backward given no tensor."""
    func = call.func
    if not isinstance(func, cst.Attribute) or func.attr.value not in BACKWARD_FUNCTIONS:
        return None
    receiver = func.value
    provider = dotted(receiver)
    if func.attr.value == "manual_backward" or (
        provider is not None and _BACKWARD_PROVIDER.search(provider.rsplit(".", 1)[-1])
    ):
        return argument(call, 0, *_LOSS_KEYWORDS)
    if isinstance(receiver, cst.Call):
        inner = receiver.func
        if isinstance(inner, cst.Attribute) and inner.attr.value == "scale" and receiver.args:
            return receiver.args[0].value  # scaler.scale(loss).backward()
    return receiver


def backward_loss_name(call: cst.Call) -> str | None:
    """The name of the tensor a backward starts from, when it is a plain name."""
    loss = backward_loss(call)
    return loss.value if isinstance(loss, cst.Name) else None


# --- imports -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Imports:
    """What each name a module imports stands for: `nnu` of `import torch.nn.utils as nnu` is
    `torch.nn.utils`, `V` of `from torch.autograd import Variable as V` is
    `torch.autograd.Variable`, `torch` of `import torch.nn` is `torch`."""

    bound: dict[str, str]

    def qualified(self, name: str) -> str | None:
        """The full path of a dotted name whose head an import binds; None for any other."""
        head, dot, rest = name.partition(".")
        path = self.bound.get(head)
        return None if path is None else path + dot + rest


def imports_of(nodes: Iterable[cst.CSTNode]) -> Imports:
    """The imports among `nodes` (a module's `Import` and `ImportFrom` statements); relative
    and star imports bind nothing known."""
    bound: dict[str, str] = {}
    for node in nodes:
        if isinstance(node, cst.Import):
            for alias in node.names:
                path = dotted(alias.name)
                if path is None:
                    continue
                if alias.asname is not None:
                    local = dotted(alias.asname.name)
                    if local is not None:
                        bound[local] = path
                else:
                    head = path.split(".", 1)[0]
                    bound[head] = head
        elif isinstance(node, cst.ImportFrom) and not isinstance(node.names, cst.ImportStar):
            if node.relative or node.module is None:
                continue
            source = dotted(node.module)
            for alias in node.names:
                name = dotted(alias.name)
                local = dotted(alias.asname.name) if alias.asname is not None else name
                if source is not None and name is not None and local is not None:
                    bound[local] = f"{source}.{name}"
    return Imports(bound)


# --- leaves ------------------------------------------------------------------------------------

# classes whose instances require grad unless told not to (`nn.Parameter(x)`)
_PARAMETER_CLASSES = frozenset({"Parameter"})


def makes_leaf(value: cst.BaseExpression, certainly: bool = True) -> bool:
    """A call that returns a leaf tensor that requires grad: a factory given
    `requires_grad=True`, `nn.Parameter(x)` (unless `requires_grad=False`), `x.requires_grad_()`,
    `torch.autograd.Variable(x, requires_grad=True)` (or `Variable(x, True)`).

    `certainly`: the flag must be the literal `True`; otherwise any value but a literal `False`
    counts (`requires_grad=train_embeddings` may be on)."""
    if not isinstance(value, cst.Call):
        return False
    name = last_name(value.func)
    flag = argument(value, None, "requires_grad")
    if name == "Variable" and flag is None:
        flag = argument(value, 1)
    if name == "requires_grad_":
        flag = argument(value, 0, "requires_grad")
    if flag is None:
        return name in _PARAMETER_CLASSES or name == "requires_grad_"
    text = code_of(flag)
    return text == "True" if certainly else text != "False"


def from_torch(value: cst.BaseExpression) -> bool:
    """A call of torch's own (`torch.randn(...)`, `nn.Parameter(...)`, `Variable(...)`, or
    `.requires_grad_()` on one of those): what it returns is a fresh tensor, never one that may
    already hold a gradient."""
    if not isinstance(value, cst.Call):
        return False
    func = value.func
    if isinstance(func, cst.Attribute) and func.attr.value == "requires_grad_":
        return from_torch(func.value)
    name = last_name(func)
    head = (dotted(func) or "").split(".")[0]
    return head in ("torch", "nn") or name in _PARAMETER_CLASSES or name == "Variable"


# --- mixed precision ------------------------------------------------------------------------


def scaler_stepped(call: cst.Call) -> cst.BaseExpression | None:
    """The optimizer `scaler.step(optimizer)` steps: a GradScaler (or anything whose name says
    scaler: `self.grad_scaler`, `amp_scaler`) steps the optimizer it is given, positionally or
    as `optimizer=`. None for any other call."""
    func = call.func
    if not isinstance(func, cst.Attribute) or func.attr.value != "step":
        return None
    if "scaler" not in code_of(func.value).lower():
        return None
    return argument(call, 0, "optimizer")


# --- in-place writes -------------------------------------------------------------------------

# tensor methods that write into their receiver
IN_PLACE_METHODS = frozenset(
    {
        "sub_",
        "add_",
        "mul_",
        "div_",
        "addcmul_",
        "addcdiv_",
        "copy_",
        "set_",
        "zero_",
        "fill_",
        "clamp_",
        "clamp_min_",
        "clamp_max_",
        "clip_",
        "normal_",
        "uniform_",
        "lerp_",
        "neg_",
        "pow_",
        "sqrt_",
        "exp_",
        "masked_fill_",
        "index_add_",
        "scatter_",
        "scatter_add_",
        "fill_diagonal_",
    }
)
# of those, the ones a hand-written optimizer step uses (`p.sub_(lr * p.grad)`)
UPDATE_METHODS = frozenset(
    {"sub_", "add_", "addcdiv_", "addcmul_", "copy_", "mul_", "div_", "lerp_", "set_"}
)


# --- grad mode -------------------------------------------------------------------------------

NO_GRAD_CALLS = frozenset({"no_grad", "inference_mode"})


def disables_grad(statement: cst.With) -> bool:
    """`with torch.no_grad():`, `torch.inference_mode()`, `torch.set_grad_enabled(False)`."""
    for item in statement.items:
        call = item.item
        if not isinstance(call, cst.Call):
            continue
        name = last_name(call.func)
        if name in NO_GRAD_CALLS:
            if name == "inference_mode" and call.args:
                if code_of(call.args[0].value) == "False":
                    continue
            return True
        if name == "set_grad_enabled" and call.args and code_of(call.args[0].value) == "False":
            return True
    return False


def decorated_no_grad(function: cst.FunctionDef) -> bool:
    """`@torch.no_grad()`, `@torch.inference_mode()` (also without the parentheses)."""
    for decorator in function.decorators:
        target = decorator.decorator
        if isinstance(target, cst.Call):
            if target.args and code_of(target.args[0].value) == "False":
                continue  # `@torch.inference_mode(False)`
            target = target.func
        if last_name(target) in NO_GRAD_CALLS:
            return True
    return False


def grad_enabled(
    node: cst.CSTNode,
    tree: Tree,
    callers: Mapping[str, Sequence[cst.Call]],
    certainly: bool,
    seen: frozenset[str] = frozenset(),
) -> bool:
    """Whether gradient recording is on where `node` runs: `certainly` on (on every way there
    gradlint sees), or else possibly on (on some way, or on a way it cannot see).

    Turned off by an enclosing `with` that disables it or a `@torch.no_grad()` function; a
    function's body runs as its calls in the module (`callers`, by function name) run it."""
    for ancestor in tree.ancestors(node):
        if isinstance(ancestor, cst.With) and disables_grad(ancestor):
            return False
        if isinstance(ancestor, cst.Lambda) and certainly:
            return False  # called from anywhere
        if isinstance(ancestor, cst.FunctionDef):
            if decorated_no_grad(ancestor):
                return False
            name = ancestor.name.value
            calls = callers.get(name, ())
            if name in seen or not calls:
                return not certainly
            ways = (grad_enabled(c, tree, callers, certainly, seen | {name}) for c in calls)
            return all(ways) if certainly else any(ways)
    return True


def callers_by_name(calls: Sequence[cst.CSTNode]) -> dict[str, list[cst.Call]]:
    """The calls of a module, by the last name of what they call (for `grad_enabled`)."""
    found: dict[str, list[cst.Call]] = {}
    for call in calls:
        if isinstance(call, cst.Call):
            name = last_name(call.func)
            if name is not None:
                found.setdefault(name, []).append(call)
    return found


def torch_no_grad_spelling(module: cst.Module) -> str | None:
    """How this module can say `torch.no_grad()`: `torch.no_grad()` or an imported `no_grad()`."""
    for node in walk(module):
        if isinstance(node, cst.Import):
            for alias in node.names:
                if dotted(alias.name) == "torch" and alias.asname is None:
                    return "torch.no_grad()"
        if isinstance(node, cst.ImportFrom) and not isinstance(node.names, cst.ImportStar):
            if dotted(node.module) == "torch" if node.module is not None else False:
                for alias in node.names:
                    if dotted(alias.name) == "no_grad" and alias.asname is None:
                        return "no_grad()"
    return None
