"""Which objects are optimizers, engines and models, and which model each optimizer was built from.

Everything here is evidence read from the module as a whole, before any path is followed:
construction sites, `accelerator.prepare(...)`, `scaler.step(...)`, DeepSpeed engines and
model wrappers. Names alone count only when nothing else is known (see `is_optimizer_name`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import NamedTuple

import libcst as cst

from gradlint.analysis.syntax import Listing, argument, dotted, last_name, listing, walk
from gradlint.analysis.torch_api import makes_leaf, scaler_stepped

# Optimizer classes that do not carry "optim" in their dotted name.
OPTIMIZER_CLASSES = frozenset(
    [
        "SGD",
        "Adam",
        "AdamW",
        "Adamax",
        "Adagrad",
        "Adadelta",
        "ASGD",
        "LBFGS",
        "NAdam",
        "RAdam",
        "RMSprop",
        "Rprop",
        "SparseAdam",
        "Adafactor",
        "Lion",
        "LAMB",
        "Lamb",
        "LARS",
        "Lars",
        "Adan",
        "Ranger",
        "Shampoo",
        "SophiaG",
        "Prodigy",
        "DAdaptAdam",
        "FusedAdam",
        "FusedLAMB",
        "FusedSGD",
        "DeepSpeedCPUAdam",
        "ZeroRedundancyOptimizer",
        "AdamW8bit",
        "Adam8bit",
        "PagedAdamW",
        "PagedAdamW8bit",
        "ScheduleFreeAdamW",
        "Muon",
    ]
)
_NOT_OPTIMIZER = re.compile(r"(?i)sched|lr_|warmup|swa_utils|averagedmodel|ema")
_OPTIMIZER_NAME = re.compile(
    r"(?:^|_|\b)(?:opt|optim|optimi[sz]er|optimi[sz]ers|opts)(?:$|_|[A-Z0-9]|\[)"
    r"|[a-z](?:Optimi[sz]er|Optim|Opt)(?:$|[A-Z0-9_\[])"
)
_WRAPPERS = frozenset(
    {
        "DataParallel",
        "DistributedDataParallel",
        "DDP",
        "FSDP",
        "FullyShardedDataParallel",
        "compile",
    }
)
_PARAMETER_METHODS = frozenset({"parameters", "named_parameters"})
_MODEL_METHODS = frozenset(
    {"parameters", "named_parameters", "train", "eval", "state_dict", "modules", "children"}
)
_FORWARD_NAME = re.compile(
    r"(?i)(model|net|loss|criterion|crit|encoder|decoder|classifier|head|generator|"
    r"discriminator|critic|actor|policy|layer|module|backbone|forward)s?(_?\d*|_fn|_func|_[a-zA-Z]|[A-Z])$|^[GD]$"
)


def is_optimizer_name(text: str) -> bool:
    """Last-resort evidence: the expression's own name says optimizer (`opt`, `optimizerD`, ...)."""
    tail = text.rsplit(".", 1)[-1]
    if _NOT_OPTIMIZER.search(tail):
        return False
    return bool(_OPTIMIZER_NAME.search(tail))


def strip_wrapper(text: str) -> str:
    """`model.module` is `model`'s parameters too (DataParallel / DDP wrappers)."""
    while text.endswith(".module"):
        text = text[: -len(".module")]
    return text


def is_optimizer_constructor(call: cst.Call) -> bool:
    name = dotted(call.func)
    if name is None:
        return False
    tail = name.rsplit(".", 1)[-1]
    if _NOT_OPTIMIZER.search(tail) or _NOT_OPTIMIZER.search(name.replace("optim.", "")):
        return False
    if tail in OPTIMIZER_CLASSES or "Optimizer" in tail:
        return True
    if ".optim." in f".{name}" and tail[:1].isupper():
        return True
    lowered = tail.lower()
    return ("optim" in lowered) and not lowered.startswith("zero")


def parameter_sources(node: cst.CSTNode) -> tuple[set[str], set[str]] | None:
    """Models (`X.parameters()`) and bare tensors (`[w, b]`) an optimizer's params come from.

    None when no evidence is found.
    """
    models: set[str] = set()
    tensors: set[str] = set()
    for sub in walk(node):
        if isinstance(sub, cst.Call) and isinstance(sub.func, cst.Attribute):
            if sub.func.attr.value in _PARAMETER_METHODS:
                receiver = dotted(sub.func.value)
                if receiver is not None:
                    models.add(strip_wrapper(receiver))
        if isinstance(sub, (cst.List, cst.Tuple)):
            for element in sub.elements:
                text = dotted(element.value)
                if text is not None:
                    tensors.add(text)
    if not models and not tensors:
        return None
    return models, tensors


class Link(NamedTuple):
    """What an optimizer was built on: the models whose `.parameters()` it was given, and the
    tensors given by name."""

    models: frozenset[str]
    tensors: frozenset[str]


@dataclass
class Knowledge:
    """What the module tells about its objects; built once per module by `scan_module`."""

    optimizers: set[str] = field(default_factory=set)
    engines: set[str] = field(default_factory=set)  # DeepSpeed engines: step() also zeroes
    # optimizer -> (models, tensors) its parameters come from; None when ambiguous or unknown
    links: dict[str, Link | None] = field(default_factory=dict)
    model_aliases: dict[str, str] = field(default_factory=dict)  # wrapped -> underlying model
    list_literals: dict[str, tuple[str, ...]] = field(default_factory=dict)  # params = [w, b]
    # params = list(model.parameters()): name -> the model whose parameters it lists, all of them
    parameter_lists: dict[str, str] = field(default_factory=dict)
    leaf_tensors: set[str] = field(default_factory=set)  # made here with requires_grad
    models: set[str] = field(default_factory=set)  # receivers of .parameters(), .train(), ...
    prepared: set[str] = field(default_factory=set)  # optimizers from accelerator.prepare()
    reevaluating: set[str] = field(default_factory=set)  # LBFGS: step(closure) calls it again
    # torch.distributed.optim.DistributedOptimizer: step(context_id) reads the gradients of a
    # distributed autograd context, never `.grad`
    context_optimizers: set[str] = field(default_factory=set)

    def gated(self, optimizer: str) -> bool:
        """Whether Accelerate gates this optimizer's step() and zero_grad(): the ones prepared
        here, or, when this module prepares none, any (it may be prepared elsewhere)."""
        return optimizer in self.prepared if self.prepared else True

    def is_forward(self, callee: str) -> bool:
        """A call that runs a model or a loss: it computes, it does not touch `.grad`."""
        return callee in self.models or bool(_FORWARD_NAME.search(callee.rsplit(".", 1)[-1]))

    def is_optimizer(self, text: str) -> bool:
        return text in self.optimizers or (text not in self.engines and is_optimizer_name(text))

    def model(self, text: str) -> str:
        text = strip_wrapper(text)
        seen = set()
        while text in self.model_aliases and text not in seen:
            seen.add(text)
            text = strip_wrapper(self.model_aliases[text])
        return text

    def link(self, optimizer: str) -> Link | None:
        return self.links.get(optimizer)

    def _add_link(self, optimizer: str, sources: tuple[set[str], set[str]] | None) -> None:
        value = None
        if sources is not None:
            value = Link(frozenset(self.model(m) for m in sources[0]), frozenset(sources[1]))
        if optimizer in self.links and self.links[optimizer] != value:
            self.links[optimizer] = None  # two different constructions under one name: unknown
        else:
            self.links[optimizer] = value


def scan_module(module: cst.Module, listed: Listing | None = None) -> Knowledge:
    """`listed`: the module's nodes, when the caller has listed them."""
    knowledge = Knowledge()
    nodes = (listed or listing(module)).of_type(cst.Assign, cst.AnnAssign, cst.Call)
    assignments: list[tuple[list[cst.CSTNode], cst.BaseExpression]] = []
    calls: list[cst.Call] = []
    for node in nodes:
        if isinstance(node, cst.Assign):
            assignments.append(([t.target for t in node.targets], node.value))
        elif isinstance(node, cst.AnnAssign) and node.value is not None:
            assignments.append(([node.target], node.value))
        elif isinstance(node, cst.Call):
            calls.append(node)
            _scan_call(knowledge, node)
    # Wrappers and list literals first, so optimizer links can see through them.
    for targets, value in assignments:
        for target in targets:
            _scan_alias(knowledge, target, value)
    for targets, value in assignments:
        for target in targets:
            _scan_assignment(knowledge, target, value)
    _scan_call_sites(knowledge, module, calls)
    return knowledge


def _scan_call_sites(knowledge: Knowledge, module: cst.Module, calls: list[cst.Call]) -> None:
    """`train(net, loader, SGD(net.parameters()))`: inside `train`, its `opt` is built on `net`."""
    functions = {s.name.value: s for s in module.body if isinstance(s, cst.FunctionDef)}
    if not functions:
        return
    for node in calls:
        if not isinstance(node.func, cst.Name):
            continue
        callee = functions.get(node.func.value)
        if callee is None:
            continue
        bound = _bound_arguments(callee, node)
        by_text = {dotted(v): name for name, v in bound.items() if dotted(v) is not None}
        for name, value in bound.items():
            link = None
            if isinstance(value, cst.Call) and is_optimizer_constructor(value):
                first = _params_argument(value)
                sources = parameter_sources(first) if first is not None else None
                if sources is not None:
                    link = Link(frozenset(sources[0]), frozenset(sources[1]))
            elif dotted(value) in knowledge.optimizers and knowledge.links.get(dotted(value) or ""):
                link = knowledge.links[dotted(value) or ""]
            if link is None:
                continue
            models = {by_text.get(m) for m in link.models}
            tensors = {by_text.get(t) for t in link.tensors}
            if None in models or None in tensors:
                knowledge._add_link(name, None)
                continue
            knowledge.optimizers.add(name)
            knowledge._add_link(name, ({m for m in models if m}, {t for t in tensors if t}))


def _bound_arguments(callee: cst.FunctionDef, call: cst.Call) -> dict[str, cst.BaseExpression]:
    params = [*callee.params.posonly_params, *callee.params.params]
    positional = [a for a in call.args if a.keyword is None and not a.star]
    bound = {p.name.value: a.value for p, a in zip(params, positional)}
    for arg in call.args:
        if arg.keyword is not None:
            bound[arg.keyword.value] = arg.value
    return bound


def _scan_call(knowledge: Knowledge, call: cst.Call) -> None:
    if isinstance(call.func, cst.Attribute) and call.func.attr.value in _MODEL_METHODS:
        receiver = dotted(call.func.value)
        if receiver is not None:
            knowledge.models.add(strip_wrapper(receiver))
    # scaler.step(opt): whatever a GradScaler steps is an optimizer.
    stepped = scaler_stepped(call)
    if stepped is not None:
        target = dotted(stepped)
        if target is not None:
            knowledge.optimizers.add(target)


def _scan_alias(knowledge: Knowledge, target: cst.CSTNode, value: cst.BaseExpression) -> None:
    name = dotted(target)
    if name is None:
        return
    if isinstance(value, (cst.List, cst.Tuple)):
        items = tuple(dotted(e.value) or "" for e in value.elements)
        if all(items):
            knowledge.list_literals[name] = items
    if isinstance(value, cst.Call):
        func = last_name(value.func)
        inner = dotted(value.args[0].value) if value.args else None
        whole = _all_parameters_of(value.args[0].value) if value.args else None
        if func in ("list", "tuple") and whole is not None:
            knowledge.parameter_lists[name] = knowledge.model(whole)  # `list(m.parameters())`
        if func in _WRAPPERS and inner is not None:
            knowledge.model_aliases[name] = inner
        elif (func == "to" or func == "cuda" or func == "cpu") and isinstance(
            value.func, cst.Attribute
        ):
            receiver = dotted(value.func.value)
            if receiver is not None and receiver != name:
                knowledge.model_aliases[name] = receiver
        if makes_leaf(value, certainly=False):
            knowledge.leaf_tensors.add(name)


def _all_parameters_of(value: cst.BaseExpression) -> str | None:
    """`m` of `m.parameters()`: every parameter of one model."""
    if (
        isinstance(value, cst.Call)
        and isinstance(value.func, cst.Attribute)
        and value.func.attr.value == "parameters"
        and not value.args
    ):
        return dotted(value.func.value)
    return None


def _scan_assignment(knowledge: Knowledge, target: cst.CSTNode, value: cst.BaseExpression) -> None:
    if not isinstance(value, cst.Call):
        return
    func = dotted(value.func) or ""
    tail = func.rsplit(".", 1)[-1]
    targets = _unpack(target)
    if tail == "prepare" and isinstance(target, (cst.Tuple, cst.List)):
        _scan_prepare(knowledge, targets, value)
        return
    if tail == "initialize" and "deepspeed" in func:
        if targets and targets[0] is not None:
            knowledge.engines.add(targets[0])
        if len(targets) > 1 and targets[1] is not None:
            knowledge.optimizers.add(targets[1])
        return
    if tail == "DistributedOptimizer" and len(targets) == 1 and targets[0] is not None:
        knowledge.context_optimizers.add(targets[0])
        return
    if is_optimizer_constructor(value) and len(targets) == 1 and targets[0] is not None:
        optimizer = targets[0]
        knowledge.optimizers.add(optimizer)
        if (dotted(value.func) or "").endswith("LBFGS"):
            knowledge.reevaluating.add(optimizer)
        first = _params_argument(value)
        sources: tuple[set[str], set[str]] | None = None
        if first is not None:
            name = dotted(first)
            if name is not None and name in knowledge.list_literals:
                sources = (set(), set(knowledge.list_literals[name]))
            elif name is not None and name in knowledge.parameter_lists:
                sources = ({knowledge.parameter_lists[name]}, set())
            else:
                sources = parameter_sources(first)
        knowledge._add_link(optimizer, sources)


def _params_argument(call: cst.Call) -> cst.BaseExpression | None:
    return argument(call, 0, "params", "model_params")


def _scan_prepare(knowledge: Knowledge, targets: list[str | None], call: cst.Call) -> None:
    """`model, opt, loader = accelerator.prepare(model, opt, loader)`: positions correspond."""
    for target, arg in zip(targets, call.args):
        source = dotted(arg.value)
        if target is None or source is None:
            continue
        if knowledge.is_optimizer(source) or knowledge.is_optimizer(target):
            knowledge.optimizers.add(target)
            knowledge.prepared.add(target)
            if target != source and source in knowledge.links:
                knowledge.links.setdefault(target, knowledge.links[source])
        elif target != source:
            knowledge.model_aliases[target] = source


def _unpack(target: cst.CSTNode) -> list[str | None]:
    if isinstance(target, (cst.Tuple, cst.List)):
        return [dotted(e.value) for e in target.elements]
    return [dotted(target)]
