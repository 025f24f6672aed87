"""A module read once before any path is followed: its functions, classes, and gradient owners."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, cast

import libcst as cst

from gradlint.analysis.calls import parameter_names
from gradlint.analysis.conditions import condition_key
from gradlint.analysis.events import (
    Event,
    GroupKey,
    Names,
    Recognizer,
    Reset,
    Update,
    collective,
)
from gradlint.analysis.graphs import GRAPH_CUTS
from gradlint.analysis.knowledge import Knowledge
from gradlint.analysis.syntax import (
    Listing,
    assigned_targets,
    body_of,
    children,
    code_of,
    dotted,
    last_name,
    walk,
)


class OwnerKind(str, Enum):
    """What holds the gradients the path analysis follows."""

    OPTIMIZER = "optimizer"  # an optimizer: its parameters' gradients
    ENGINE = "engine"  # a DeepSpeed engine: step() also zeroes
    GROUP = "group"  # a model's parameters, reset or updated by a loop over them
    TENSOR = "tensor"  # a tensor that requires grad, updated by hand


@dataclass
class ModuleIndex:
    functions: dict[str, cst.FunctionDef]
    classes: dict[str, dict[str, cst.FunctionDef]]
    enclosing_class: dict[int, str]  # id(FunctionDef) -> class name for methods
    owners: dict[str, OwnerKind]  # owner key -> what it is
    repeated: set[int]  # ids of functions a framework calls once per batch
    # ids of functions (MODULE for the module body) from which a backward() is reachable, and
    # from which any gradient event is: the others are never analysed or followed into
    with_backward: set[int]
    with_events: set[int]
    event_names: set[str]  # names of the functions and methods whose calls steer branches
    repeated_conditions: set[str]  # `if` conditions (as compared) tested more than once
    scopes: dict[int, cst.CSTNode] = field(default_factory=dict)  # id -> function (or module)
    called: frozenset[int] = frozenset()  # ids of the functions some scope of the module calls
    # receivers of `.zero_grad()` calls that are sub-modules (`model.fc`), and whether the module
    # freezes parameters anywhere (`requires_grad = False`): a sole sub-module reset of an
    # unfrozen model leaves the rest of its gradient in place
    submodule_resets: frozenset[str] = frozenset()
    # lists whose emptiness an `if` tests (`if len(outputs) == 0: continue`): `xs = []` and
    # `xs.append(x)` are followed for them
    emptiness_tested: frozenset[str] = frozenset()
    freezes: bool = False
    _sources: dict[int, dict[str, frozenset[str]]] = field(default_factory=dict)

    def sources(self, scope: int, name: str) -> frozenset[str]:
        """Names a local variable's value was computed from in a scope, through other locals:
        after `out = net(x)` and `loss = crit(out, y)`, `loss` comes from net, crit, x, y."""
        table = self._sources.get(scope)
        if table is None:
            table = _provenance(self.scopes.get(scope))
            self._sources[scope] = table
        return table.get(name, frozenset())

    _steering: dict[int, bool] = field(default_factory=dict)

    def steers_gradients(self, branch: cst.If) -> bool:
        """Whether an `if` matters to the analysis: a gradient event, a call that may reach one,
        or a jump out of the iteration in its branches."""
        known = self._steering.get(id(branch))
        if known is None:
            parts = [branch.body, *([branch.orelse] if branch.orelse is not None else [])]
            known = any(self._steers(node) for part in parts for node in walk(part))
            self._steering[id(branch)] = known
        return known

    def _steers(self, node: cst.CSTNode) -> bool:
        if isinstance(node, (cst.Continue, cst.Break, cst.Return, cst.Raise)):
            return True
        if isinstance(node, cst.Attribute) and node.attr.value in _EVENT_WORDS:
            return True
        if isinstance(node, cst.Call):
            name = dotted(node.func) or ""
            return name.removeprefix("self.") in self.event_names
        return False


MODULE = 0
_BACKWARD_WORDS = frozenset({"backward", "manual_backward"})
# the path analysis explores only scopes that reach one of these attributes: a rule whose
# findings come from it alone needs one of them in every trigger (any of them, as trigger words)
REACHES_BACKWARD: tuple[str, ...] = tuple(f".{word}" for word in sorted(_BACKWARD_WORDS))
# clipping, unscaling and mode switches matter to the order rules: a helper that only clips
# or only switches a model to evaluation is followed too
_TRAINING_WORDS = frozenset({"clip_grad_norm_", "clip_grad_value_", "unscale_", "eval", "train"})
_EVENT_WORDS = _BACKWARD_WORDS | _TRAINING_WORDS | {"step", "zero_grad", "grad"}
# a helper that appends one of its parameters to a list (`self.losses.append(value)`) may keep
# a loss in it (GL101): followed, though its calls do not steer the gradient analysis' branches
_KEEPS = "append"


def index_module(
    module: cst.Module, knowledge: Knowledge, recognizer: Recognizer, listed: Listing
) -> ModuleIndex:
    """`listed`: every node of the module in walk order, listed once for all the scans here."""
    functions: dict[str, cst.FunctionDef] = {}
    classes: dict[str, dict[str, cst.FunctionDef]] = {}
    enclosing: dict[int, str] = {}
    repeated: set[int] = set()
    for stmt in module.body:
        if isinstance(stmt, cst.FunctionDef):
            functions[stmt.name.value] = stmt
        elif isinstance(stmt, cst.ClassDef):
            methods = {}
            lightning = any("LightningModule" in code_of(base.value) for base in stmt.bases)
            for item in body_of(stmt.body):
                if isinstance(item, cst.FunctionDef):
                    methods[item.name.value] = item
                    enclosing[id(item)] = stmt.name.value
                    if lightning and item.name.value == "training_step":
                        repeated.add(id(item))
            classes[stmt.name.value] = methods
    for node in listed.of_type(cst.Call):
        assert isinstance(node, cst.Call)
        # ignite: Engine(update_fn) calls update_fn once per batch
        if last_name(node.func) == "Engine" and node.args:
            handler = functions.get(dotted(node.args[0].value) or "")
            if handler is not None:
                repeated.add(id(handler))
    repeated |= _per_batch(functions, classes, listed)
    owners = _owners(knowledge, recognizer, listed)
    function_defs = cast(list[cst.FunctionDef], listed.of_type(cst.FunctionDef))
    with_backward, with_events, steering, called = _reach(functions, classes, function_defs, listed)
    event_names = {node.name.value for node in function_defs if id(node) in steering}
    tests = Counter(
        condition_key(test)[0]
        for node in cast(list[cst.If], listed.of_type(cst.If))
        for test in _operands(node.test)
    )
    return ModuleIndex(
        functions,
        classes,
        enclosing,
        owners,
        repeated,
        with_backward,
        with_events,
        event_names,
        {key for key, count in tests.items() if key is not None and count > 1},
        {id(n): n for n in function_defs} | {MODULE: module},
        submodule_resets=frozenset(_reset_receivers(listed)),
        freezes=_freezes(listed),
        emptiness_tested=frozenset(
            key[len("len(") : -len(") == 0")]
            for key in tests
            if key is not None and key.startswith("len(") and key.endswith(") == 0")
        ),
        called=frozenset(called),
    )


# names that say "one training step": a function so named that runs a backward and a step is
# called once per batch by whoever drives it (a trainer, an ignite Engine, the user's loop)
_STEP_ROLE = re.compile(
    r"^(?:training_step|train_step|train_on_batch|train_batch|fit_batch|process_batch|"
    r"step|update|optimi[sz]e|optimi[sz]e_step|learn|update_step|train_iteration)$"
)


# receivers whose `.step()` / `.update()` is not a call of the user's training step
_NOT_A_CALLER = re.compile(r"(?i)opt|sched|scaler|lr|swa|ema|engine|accelerator|progress|bar")


def _operands(test: cst.BaseExpression) -> list[cst.BaseExpression]:
    """A test and, for `a and b` / `a or b`, each side: each may be what decides."""
    if isinstance(test, cst.BooleanOperation):
        return [test, *_operands(test.left), *_operands(test.right)]
    return [test]


def _per_batch(
    functions: dict[str, cst.FunctionDef],
    classes: dict[str, dict[str, cst.FunctionDef]],
    nodes: Listing,
) -> set[int]:
    """Functions that run a backward and an optimizer step, not inside a loop of their own,
    whose name gives them the role of one training step, and that nothing in view calls only
    from straight-line code (a call in view that is not in a loop shows it runs once there)."""
    candidates = [*functions.values(), *(m for ms in classes.values() for m in ms.values())]
    chosen = {id(f) for f in candidates if _STEP_ROLE.match(f.name.value) and _steps_once(f)}
    if not chosen:
        return set()
    by_name = {f.name.value: id(f) for f in candidates if id(f) in chosen}
    straight: set[int] = set()
    in_loop: set[int] = set()
    loops_open: list[int] = []  # end index of each enclosing loop
    for index, node in enumerate(nodes.nodes):
        while loops_open and loops_open[-1] <= index:
            loops_open.pop()
        if isinstance(node, (cst.For, cst.While, cst.ListComp, cst.GeneratorExp)):
            loops_open.append(nodes.ends[index])
        elif isinstance(node, cst.Call):
            target = by_name.get(last_name(node.func) or "")
            receiver = node.func.value if isinstance(node.func, cst.Attribute) else None
            text = (dotted(receiver) or "") if receiver is not None else ""
            if target is not None and not _NOT_A_CALLER.search(text):
                (in_loop if loops_open else straight).add(target)
    return {key for key in chosen if key not in straight or key in in_loop}


def _steps_once(function: cst.FunctionDef) -> bool:
    """A backward and a step in the function's own body, neither under a loop of its own."""
    found: set[str] = set()

    def visit(node: cst.CSTNode) -> None:
        if isinstance(node, (cst.For, cst.While, cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            if node is not function:
                return
        if isinstance(node, cst.Call):
            name = last_name(node.func)
            if name in _BACKWARD_WORDS:
                found.add("backward")
            elif name == "step":
                found.add("step")
        for child in children(node):
            visit(child)

    visit(function)
    return found == {"backward", "step"}


def _reset_receivers(nodes: Listing) -> set[str]:
    """`model.fc` of every `model.fc.zero_grad()` whose receiver is an attribute chain."""
    found = set()
    for node in nodes.of_type(cst.Call):
        assert isinstance(node, cst.Call)
        if isinstance(node.func, cst.Attribute) and node.func.attr.value == "zero_grad":
            receiver = dotted(node.func.value)
            if receiver is not None and "." in receiver:
                found.add(receiver)
    return found


def _freezes(nodes: Listing) -> bool:
    """Whether some parameters are frozen: `p.requires_grad = False`, `requires_grad_(False)`,
    or a call named like freezing (`freeze_backbone()`)."""
    for node in nodes.of_type(cst.Assign, cst.Call):
        if isinstance(node, cst.Assign):
            if any((dotted(t.target) or "").endswith("requires_grad") for t in node.targets):
                return True
        elif isinstance(node, cst.Call):
            name = last_name(node.func) or ""
            if name == "requires_grad_" or "freeze" in name.lower():
                return True
    return False


def _graph_names(value: cst.BaseExpression) -> set[str]:
    """The names a value's autograd graph may come from: `names_in`, minus what is read
    through `.detach()`, `.item()`, `.data` and the like."""
    found: set[str] = set()

    def visit(node: cst.CSTNode) -> None:
        if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
            if node.func.attr.value in GRAPH_CUTS:
                return
        if isinstance(node, cst.Attribute) and node.attr.value in GRAPH_CUTS:
            return
        text = dotted(node)
        if text is not None:
            found.add(text)
        for child in children(node):
            visit(child)

    visit(value)
    return found


def _provenance(scope: cst.CSTNode | None) -> dict[str, frozenset[str]]:
    direct: dict[str, set[str]] = {}

    def visit(node: cst.CSTNode) -> None:
        if isinstance(node, (cst.FunctionDef, cst.ClassDef, cst.Lambda)) and node is not scope:
            return
        value = getattr(node, "value", None)
        if isinstance(node, (cst.Assign, cst.AugAssign, cst.AnnAssign)) and value is not None:
            read = _graph_names(value)
            for target in assigned_targets(node):
                direct.setdefault(target, set()).update(read)
        for child in children(node):
            visit(child)

    if scope is not None:
        visit(scope)
    closed: dict[str, frozenset[str]] = {}
    for name in direct:
        seen, todo = set(), [name]
        while todo:
            current = todo.pop()
            for source in direct.get(current, ()):
                if source not in seen:
                    seen.add(source)
                    todo.append(source)
        closed[name] = frozenset(seen)
    return closed


def _keeps_a_parameter(call: cst.Call, function: cst.FunctionDef) -> bool:
    """`xs.append(value)` in a function with a parameter `value`."""
    func = call.func
    if type(func) is not cst.Attribute or func.attr.value != _KEEPS or len(call.args) != 1:
        return False
    given = call.args[0].value
    return type(given) is cst.Name and given.value in parameter_names(function)


def _reach(
    functions: dict[str, cst.FunctionDef],
    classes: dict[str, dict[str, cst.FunctionDef]],
    function_defs: list[cst.FunctionDef],
    nodes: Listing,
) -> tuple[set[int], set[int], set[int], set[int]]:
    """Which scopes can reach a backward(), any gradient event or an append to a list, and any
    gradient event, directly or through calls to functions of this module (names resolved
    loosely: more reach only costs time); and the functions some scope may call."""
    words: dict[int, set[str]] = {}
    calls: dict[int, set[int]] = {}
    nested: dict[str, list[int]] = {}
    by_id = {id(node): node for node in function_defs}
    for node in function_defs:
        nested.setdefault(node.name.value, []).append(id(node))

    # (end of subtree, function scope, class name) of what encloses the current node
    enclosing: list[tuple[int, int, str | None]] = [(len(nodes.nodes), MODULE, None)]
    # the end of the current import: its dotted module names (`import a.backward`) are not
    # mentions of an event (and not words of code for `triggers.code_words`)
    import_end = 0
    for index, node in enumerate(cast(list[Any], nodes.nodes)):  # kinds tested by type()
        while enclosing[-1][0] <= index:
            enclosing.pop()
        _, scope, cls = enclosing[-1]
        kind = type(node)
        if kind is cst.FunctionDef:
            enclosing.append((nodes.ends[index], id(node), cls))
        elif kind is cst.ClassDef:
            enclosing.append((nodes.ends[index], scope, node.name.value))
        elif kind is cst.Import or kind is cst.ImportFrom:
            import_end = nodes.ends[index]
        elif kind is cst.Attribute and node.attr.value in _EVENT_WORDS and index >= import_end:
            words.setdefault(scope, set()).add(node.attr.value)
        elif (
            kind is cst.Name and node.value in _TRAINING_WORDS
        ):  # `from ... import clip_grad_norm_`
            words.setdefault(scope, set()).add(node.value)
        elif kind is cst.Call:
            if scope != MODULE and _keeps_a_parameter(node, by_id[scope]):
                words.setdefault(scope, set()).add(_KEEPS)
            name = dotted(node.func) or ""
            targets: list[int] = []
            if name.startswith("self.") and cls is not None:
                method = classes.get(cls, {}).get(name[5:])
                targets = [id(method)] if method is not None else []
            elif "." not in name:
                targets = nested.get(name, []) + (
                    [id(functions[name])] if name in functions else []
                )
            # a function handed to a call (`opt.step(closure)`) may be called by it
            for arg in node.args:
                if type(arg.value) is cst.Name:
                    handed = arg.value.value
                    targets += nested.get(handed, []) + (
                        [id(functions[handed])] if handed in functions else []
                    )
            calls.setdefault(scope, set()).update(targets)

    def closure(seeds: set[int]) -> set[int]:
        reached = set(seeds)
        changed = True
        while changed:
            changed = False
            for scope, callees in calls.items():
                if scope not in reached and callees & reached:
                    reached.add(scope)
                    changed = True
        return reached

    with_backward = closure({s for s, w in words.items() if w & _BACKWARD_WORDS})
    with_events = closure(set(words))
    steering = closure({s for s, w in words.items() if w - {_KEEPS}})
    called = {callee for callees in calls.values() for callee in callees}
    return with_backward, with_events, steering, called


def _owners(knowledge: Knowledge, recognizer: Recognizer, nodes: Listing) -> dict[str, OwnerKind]:
    """Every gradient owner the module's events name, found before any path is followed."""
    owners: dict[str, OwnerKind] = {}

    def note(event: Event | None) -> None:
        if isinstance(event, Update):
            for key in event.owners:
                kind = (
                    OwnerKind.ENGINE
                    if event.zeroes_after
                    else (
                        OwnerKind.OPTIMIZER
                        if knowledge.is_optimizer(key) or key in knowledge.optimizers
                        else (OwnerKind.GROUP if isinstance(key, GroupKey) else OwnerKind.TENSOR)
                    )
                )
                owners.setdefault(key, kind)
        elif isinstance(event, Reset):
            if event.optimizer:
                owners.setdefault(event.optimizer, OwnerKind.OPTIMIZER)
            for tensor in event.tensors:
                owners.setdefault(tensor, OwnerKind.TENSOR)

    # (end of subtree, names) of the loops over parameters that enclose the current node
    enclosing: list[tuple[int, Names]] = [(len(nodes.nodes), Names())]
    for index, node in enumerate(cast(list[Any], nodes.nodes)):  # kinds tested by type()
        while enclosing[-1][0] <= index:
            enclosing.pop()
        names = enclosing[-1][1]
        kind = type(node)
        if kind is cst.For:
            together = collective(node, knowledge, names)
            if together is not None:
                names = together.names(names)
                enclosing.append((nodes.ends[index], names))
                for group in together.params.values():
                    if group.models:
                        owners.setdefault(group.key, OwnerKind.GROUP)
        elif kind is cst.Call:
            note(recognizer.call(node, names))
        elif kind is cst.Assign or kind is cst.AugAssign or kind is cst.Del:
            for event in recognizer.assignment(node, names):
                note(event)
    for optimizer in knowledge.optimizers:
        owners.setdefault(optimizer, OwnerKind.OPTIMIZER)
    for engine in knowledge.engines:
        owners[engine] = OwnerKind.ENGINE
    return owners
