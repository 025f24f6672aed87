"""What a fix must not disturb: reads of `.grad`, guards that depend on data, function bounds.

A safe fix keeps every value the program reads except the defect's. For the gradient rules
that means: a reset inserted or moved never lands between a read of `.grad` and the
`backward()` that would have filled it (the read would find `None`), never moves into or out
of a branch whose condition depends on data (`torch.isfinite(norm)`, a loss threshold), and
never leaves the function whose names it uses. These questions are syntactic and answered
here once for every rule's fix.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Iterator

import libcst as cst

from gradlint.analysis.calls import HARMLESS_METHODS, HARMLESS_ROOTS, handed_over
from gradlint.analysis.knowledge import Knowledge
from gradlint.analysis.syntax import (
    Listing,
    assigned_targets,
    dotted,
    ends_by_leaving,
    last_name,
    names_in,
    walk,
)
from gradlint.tree import Tree

# calls that read `.grad` of what they receive, wherever they come from
GRAD_READING_CALLS = frozenset(
    {
        "clip_grad_norm_",
        "clip_grad_value_",
        "clip_grads_with_norm_",
        "get_total_norm",
        "unscale_",
        "grad_norm",
    }
)
# names of accumulation windows: `if (step + 1) % accum_steps == 0`, `if accelerator.sync_gradients`
_WINDOW_WORDS = re.compile(r"accum|sync_gradients|micro", re.IGNORECASE)
# calls in a condition that only count or measure the loop, not the data
_COUNTING_CALLS = frozenset({"len", "int", "min", "max", "range", "enumerate"})
_EXITS = (cst.Break, cst.Return, cst.Raise)
_BUILTINS = frozenset(dir(builtins))


def is_window_test(test: cst.BaseExpression) -> bool:
    """A condition that selects every k-th iteration: a modulo, or a name of accumulation."""
    for node in walk(test):
        if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Modulo):
            return True
        if isinstance(node, cst.Name) and _WINDOW_WORDS.search(node.value):
            return True
        if isinstance(node, cst.Attribute) and _WINDOW_WORDS.search(node.attr.value):
            return True
    return False


def depends_on_data(test: cst.BaseExpression) -> bool:
    """A condition computed from tensors or values of this batch (`torch.isfinite(norm)`,
    `loss.item() < limit`): any call other than counting ones, or a subscript or attribute of
    a value that is not a plain counter."""
    for node in walk(test):
        if isinstance(node, cst.Call) and (last_name(node.func) or "") not in _COUNTING_CALLS:
            return True
    return False


def guards(
    node: cst.CSTNode, tree: Tree, stop: cst.CSTNode | None = None
) -> list[cst.BaseExpression]:
    """The conditions under which `node` runs, up to `stop` (or its function): enclosing `if`
    tests, and the tests of earlier `if ...: continue/break/return` in the enclosing blocks."""
    found: list[cst.BaseExpression] = []
    child: cst.CSTNode = node
    for ancestor in tree.ancestors(node):
        if ancestor is stop or isinstance(ancestor, (cst.FunctionDef, cst.Lambda, cst.ClassDef)):
            break
        if isinstance(ancestor, cst.If) and child is not ancestor.test:
            found.append(ancestor.test)
        if isinstance(ancestor, (cst.IndentedBlock, cst.Module)):
            for sibling in ancestor.body:
                if sibling is child:
                    break
                if isinstance(sibling, cst.If) and ends_by_leaving(sibling.body):
                    found.append(sibling.test)
        child = ancestor
    return found


def enclosing_function(node: cst.CSTNode, tree: Tree) -> cst.FunctionDef | None:
    for ancestor in tree.ancestors(node):
        if isinstance(ancestor, cst.FunctionDef):
            return ancestor
    return None


class GradReads:
    """Which statements may read `.grad`: directly, through a call known to read it, through a
    function of this module that does, or through a call that receives a model, an optimizer
    or parameters (it may log or check their gradients)."""

    def __init__(self, tree: Tree, knowledge: Knowledge, listed: Listing):
        self.tree = tree
        self.knowledge = knowledge
        self.holders = set(knowledge.optimizers) | set(knowledge.models) | knowledge.leaf_tensors
        for link in knowledge.links.values():
            if link is not None:
                self.holders |= link.models | link.tensors
        self.functions: dict[str, cst.FunctionDef] = {}
        for node in listed.of_type(cst.FunctionDef):
            assert isinstance(node, cst.FunctionDef)
            self.functions.setdefault(node.name.value, node)
        self._reading: dict[int, bool] = {}

    def reads(self, node: cst.CSTNode, exclude: cst.CSTNode | None = None) -> bool:
        """Whether running `node` may read a `.grad` (`exclude`: a part not to count, such as
        the update that consumes the gradient)."""
        return next(self.sites(node, exclude), None) is not None

    def sites(self, node: cst.CSTNode, exclude: cst.CSTNode | None = None) -> Iterator[cst.CSTNode]:
        """The `.grad` attributes and calls in `node` that may read a gradient, in source order."""
        skipped: set[int] = set()
        for inner in walk(node):
            if inner is exclude or id(self.tree.parent.get(id(inner))) in skipped:
                skipped.add(id(inner))
                continue
            if isinstance(inner, cst.Attribute) and inner.attr.value == "grad":
                if not self._written(inner):
                    yield inner
            elif isinstance(inner, cst.Call) and self._call_reads(inner):
                yield inner

    def _written(self, attribute: cst.Attribute) -> bool:
        """`x.grad = ...` and `del x.grad` write the gradient; everything else reads it."""
        parent = self.tree.parent.get(id(attribute))
        if isinstance(parent, cst.AssignTarget) and parent.target is attribute:
            return True
        return isinstance(parent, cst.Del) and parent.target is attribute

    def _call_reads(self, call: cst.Call) -> bool:
        name = dotted(call.func) or ""
        tail = name.rsplit(".", 1)[-1]
        if tail in GRAD_READING_CALLS or "grad_norm" in tail:
            return True
        callee = self._callee(name)
        if callee is not None:
            return self._function_reads(callee)
        root = name.split(".", 1)[0]
        if self.knowledge.is_forward(name) or root in HARMLESS_ROOTS or tail in HARMLESS_METHODS:
            return False
        received = {h for arg in call.args for h in handed_over(arg.value)}
        return any(self.knowledge.model(h) in self.holders or h in self.holders for h in received)

    def _callee(self, name: str) -> cst.FunctionDef | None:
        if name.startswith("self."):
            name = name[5:]
        return self.functions.get(name) if "." not in name else None

    def _function_reads(self, function: cst.FunctionDef) -> bool:
        key = id(function)
        if key not in self._reading:
            self._reading[key] = True  # recursion: assume it reads (the careful answer)
            self._reading[key] = self.reads(function.body)
        return self._reading[key]


def reads_before(
    reads: GradReads, block_owner: cst.CSTNode, statement: cst.CSTNode, tree: Tree
) -> bool:
    """Whether anything in `block_owner`'s body that runs before `statement` may read `.grad`
    or leave the iteration early (a `break` or `return` there would skip the `backward()`)."""
    chain = [statement, *tree.ancestors(statement)]
    for index, ancestor in enumerate(chain):
        if ancestor is block_owner:
            break
        if not isinstance(ancestor, (cst.IndentedBlock, cst.Module)):
            continue
        child = chain[index - 1]
        for sibling in ancestor.body:
            if sibling is child:
                break
            if reads.reads(sibling) or any(isinstance(n, _EXITS) for n in walk(sibling)):
                return True
    return False


def names_bound_at(statement: cst.CSTNode, destination: cst.CSTNode, tree: Tree) -> bool:
    """Whether every name `statement` uses means the same thing at `destination`: both in one
    function, or the names are the module's own and neither function rebinds them."""
    source_function = enclosing_function(statement, tree)
    target_function = enclosing_function(destination, tree)
    if source_function is target_function:
        return True
    used = {name.split(".", 1)[0] for name in names_in(statement)}
    used -= {name.split(".", 1)[0] for name in assigned_targets(statement)} | _BUILTINS
    module_names: set[str] = set()
    for top in tree.module.body:
        if isinstance(top, (cst.FunctionDef, cst.ClassDef)):
            module_names.add(top.name.value)
        else:
            module_names |= {n.split(".", 1)[0] for n in assigned_targets(top)}
    for function in (source_function, target_function):
        if function is None:
            continue
        local = {n.split(".", 1)[0] for n in assigned_targets(function.body)}
        if used & (local | _parameters(function)):
            return False
    return used <= module_names


def _parameters(function: cst.FunctionDef) -> set[str]:
    params = function.params
    every = [*params.posonly_params, *params.params, *params.kwonly_params]
    star = [p for p in (params.star_arg, params.star_kwarg) if isinstance(p, cst.Param)]
    return {p.name.value for p in (*every, *star)}
