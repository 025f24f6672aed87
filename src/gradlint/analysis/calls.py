"""Calls as the path analysis sees them: which run, what they are handed, which are harmless."""

from __future__ import annotations

import libcst as cst

from gradlint.analysis.events import Names, ParamGroup, written_group
from gradlint.analysis.knowledge import Knowledge
from gradlint.analysis.syntax import (
    assigned_targets,
    bound_here,
    children,
    dotted,
    last_name,
    walk,
)

HARMLESS_ROOTS = frozenset(
    [
        "torch",
        "nn",
        "F",
        "np",
        "numpy",
        "math",
        "random",
        "logging",
        "logger",
        "log",
        "print",
        "len",
        "range",
        "enumerate",
        "zip",
        "list",
        "tuple",
        "dict",
        "set",
        "sum",
        "min",
        "max",
        "sorted",
        "str",
        "repr",
        "int",
        "float",
        "bool",
        "iter",
        "next",
        "id",
        "type",
        "isinstance",
        "getattr",
        "hasattr",
        "setattr",
        "wandb",
        "mlflow",
        "tqdm",
        "time",
        "os",
        "sys",
        "json",
        "pickle",
        "copy",
        "warnings",
        "abs",
        "round",
        "writer",
        "tb_writer",
        "summary_writer",
    ]
)


HARMLESS_METHODS = frozenset(
    [
        "accumulate",
        "no_sync",
        # Lightning: which optimizer's parameters require grad; gradients stay as they are
        "toggle_optimizer",
        "untoggle_optimizer",
        "autocast",
        "clip_grad_norm_",
        "clip_grad_value_",
        "state_dict",
        "load_state_dict",
        "save",
        "load",
        "deepcopy",
        "item",
        "log",
        "log_dict",
        "add_scalar",
        "add_scalars",
        "info",
        "debug",
        "warning",
        "print",
        "append",
        "extend",
        "format",
        "detach",
        "cpu",
        "cuda",
        "to",
        "numpy",
        "tolist",
    ]
)


def calls_in(node: cst.CSTNode) -> list[cst.Call]:
    """Calls in evaluation order, not entering lambdas, nested defs or comprehension-free bodies."""
    found: list[cst.Call] = []

    def visit(n: cst.CSTNode) -> None:
        if isinstance(n, (cst.Lambda, cst.FunctionDef, cst.ClassDef)):
            return
        if isinstance(n, cst.Call):
            visit(n.func)
            for arg in n.args:
                visit(arg)
            found.append(n)
            return
        for child in children(n):
            visit(child)

    visit(node)
    return found


def handed_over(value: cst.BaseExpression) -> set[str]:
    """Objects an argument gives the callee: `model`, `model.parameters()`, `[w, b]`.

    `model(x)` hands over only the model's output, not the model.
    """
    text = dotted(value)
    if text is not None:
        return {text}
    if isinstance(value, (cst.List, cst.Tuple, cst.Set)):
        return {n for e in value.elements for n in handed_over(e.value)}
    if isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute):
        if value.func.attr.value in ("parameters", "named_parameters", "children", "modules"):
            return handed_over(value.func.value)
    if isinstance(value, cst.Dict):
        return {
            n
            for e in value.elements
            if isinstance(e, cst.DictElement)
            for n in handed_over(e.value)
        }
    return set()


def constructs(call: cst.Call) -> bool:
    tail = last_name(call.func) or ""
    return tail[:1].isupper() or tail == "deepcopy"


def bind_arguments(callee: cst.FunctionDef, call: cst.Call, names: Names) -> dict[str, str]:
    params = list(callee.params.posonly_params) + list(callee.params.params)
    if params and params[0].name.value in ("self", "cls") and isinstance(call.func, cst.Attribute):
        params = params[1:]
    aliases: dict[str, str] = {}
    positional = [a for a in call.args if a.keyword is None and not a.star]
    for param, arg in zip(params, positional):
        text = dotted(arg.value)
        if text is not None:
            aliases[param.name.value] = names.resolve(text)
    keyword = {a.keyword.value: a.value for a in call.args if a.keyword is not None}
    for param in [*params, *callee.params.kwonly_params]:
        value = keyword.get(param.name.value)
        text = dotted(value) if value is not None else None
        if text is not None:
            aliases[param.name.value] = names.resolve(text)
    return aliases


def bind_groups(
    callee: cst.FunctionDef, call: cst.Call, names: Names, knowledge: Knowledge
) -> dict[str, ParamGroup]:
    """The parameters given a group of parameters, with what it holds: a list of names
    (`zero_grads([w, b])`) or a model's parameters (`sgd_step(model.parameters(), lr)`)."""
    params = list(callee.params.posonly_params) + list(callee.params.params)
    if params and params[0].name.value in ("self", "cls") and isinstance(call.func, cst.Attribute):
        params = params[1:]
    positional = [a for a in call.args if a.keyword is None and not a.star]
    given = [(p.name.value, a.value) for p, a in zip(params, positional)]
    given += [(a.keyword.value, a.value) for a in call.args if a.keyword is not None]
    bound: dict[str, ParamGroup] = {}
    for name, value in given:
        group = written_group(value, knowledge, names)
        if group is not None and (group.models or group.tensors):
            bound[name] = group
    return bound


def local_names(function: cst.FunctionDef) -> set[str]:
    """The plain names a function binds (not those it declares global or nonlocal)."""
    shared = {
        name.name.value
        for node in walk(function.body)
        if isinstance(node, (cst.Global, cst.Nonlocal))
        for name in node.names
    }
    return {n for n in assigned_targets(function.body) if "." not in n} - shared


def rebound_parameters(function: cst.FunctionDef) -> frozenset[str]:
    """The parameters the function binds anew (`w = w.to(device)`, `value = float(value)`,
    `for w in ...`): from there on the name is not the caller's object. An augmented
    assignment (`w -= lr * w.grad`) writes into the same object and does not count."""
    names = set(parameter_names(function))
    found: set[str] = set()
    for node in walk(function.body):
        if type(node) is not cst.AugAssign:
            found |= bound_here(node) & names
    return frozenset(found)


def parameter_names(callee: cst.FunctionDef) -> list[str]:
    params = callee.params
    every = [*params.posonly_params, *params.params, *params.kwonly_params]
    for star in (params.star_arg, params.star_kwarg):
        if isinstance(star, cst.Param):
            every.append(star)
    return [p.name.value for p in every]


_LITERALS = {"True": True, "False": False, "None": False}


def literal_arguments(callee: cst.FunctionDef, call: cst.Call) -> frozenset[tuple[str, bool]]:
    """Parameters whose value at this call is a literal, as (name, truthiness) conditions:
    `step_model(m, x, False)` makes `if do_backward:` in the callee known."""
    params = [*callee.params.posonly_params, *callee.params.params]
    if params and params[0].name.value in ("self", "cls") and isinstance(call.func, cst.Attribute):
        params = params[1:]
    values: dict[str, cst.BaseExpression] = {}
    for param in [*params, *callee.params.kwonly_params]:
        if param.default is not None:
            values[param.name.value] = param.default
    positional = [a for a in call.args if a.keyword is None and not a.star]
    if any(a.star for a in call.args):
        return frozenset()
    for param, arg in zip(params, positional):
        values[param.name.value] = arg.value
    for arg in call.args:
        if arg.keyword is not None:
            values[arg.keyword.value] = arg.value
    known = set()
    for name, value in values.items():
        if isinstance(value, cst.Name) and value.value in _LITERALS:
            known.add((name, _LITERALS[value.value]))
        elif isinstance(value, cst.Integer):
            known.add((name, int(value.value, 0) != 0))
    return frozenset(known)
