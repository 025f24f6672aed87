"""Recognise gradient events in a CST: backward, update and reset, with the objects they touch.

Recognition is syntactic and uses the module's `Knowledge`; it never follows paths (that is
`flow`'s job). `Names` maps local names to what they stand for (a callee's parameters bound to
the caller's objects, the loop variable of a loop over a model's parameters).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Union

import libcst as cst

from gradlint.analysis.knowledge import Knowledge, strip_wrapper
from gradlint.analysis.positions import Positions
from gradlint.analysis.syntax import body_of, code_of, dotted, last_name, names_in, walk, written
from gradlint.analysis.torch_api import (
    BACKWARD_FUNCTIONS,
    UPDATE_METHODS,
    backward_loss_name,
    scaler_stepped,
)

# torch.distributed.autograd (often imported as dist_autograd): backward(context_id, losses)
_DISTRIBUTED_AUTOGRAD = re.compile(r"(?:^|\.)(?:dist_autograd|distributed\.autograd)$")


@dataclass(frozen=True)
class Site:
    """Where an event happens: compared by `seq`, the order in which the analysis met it."""

    seq: int
    label: str  # short source text, e.g. `opt.step()`
    via: tuple[int, ...] = ()  # the calls it was reached through (a helper called twice: two sites)
    node: cst.CSTNode | None = field(default=None, compare=False, hash=False, repr=False)
    positions: Positions | None = field(default=None, compare=False, hash=False, repr=False)

    @property
    def line(self) -> int:
        return self.positions.of(self.node)[0] if self.positions and self.node else 0

    @property
    def col(self) -> int:  # 0-based
        return self.positions.of(self.node)[1] if self.positions and self.node else 0


class GroupKey(str):
    """The owner key of the parameters of one or more models (`m.parameters()`, several joined
    by commas): a string, so states sort and print it, that knows the models it stands for."""

    models: tuple[str, ...]

    def __new__(cls, models: tuple[str, ...]) -> GroupKey:
        key = super().__new__(cls, ",".join(f"{m}.parameters()" for m in models))
        key.models = models
        return key

    def __getnewargs__(self) -> tuple[tuple[str, ...]]:  # type: ignore[override]
        return (self.models,)


@dataclass(frozen=True)
class ParamGroup:
    """What a loop variable over parameters stands for: a model's parameters or named tensors."""

    models: tuple[str, ...] = ()
    tensors: tuple[str, ...] = ()
    optimizer: str | None = None  # `for p in group["params"]` of `for group in opt.param_groups`

    @property
    def key(self) -> str:
        if self.optimizer is not None:
            return self.optimizer
        return GroupKey(self.models) if self.models else ",".join(self.tensors)


@dataclass(frozen=True)
class Collective:
    """A loop that acts on a whole collection at once: its body runs once, never zero times.
    `params`: loop variables over parameters; `aliases`: loop variables that stand for every
    element of a collection of optimizers or parameter groups (`opt` -> `optimizers[*]`)."""

    params: dict[str, ParamGroup] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)

    def names(self, names: Names) -> Names:
        return replace(
            names,
            params={**names.params, **self.params},
            aliases={**names.aliases, **self.aliases},
        )


@dataclass(frozen=True)
class Backward:
    site: Site
    loss: str | None = None  # the name whose backward() this is, when it is a plain name


@dataclass(frozen=True)
class Update:
    owners: tuple[str, ...]
    site: Site
    zeroes_after: bool = False  # DeepSpeed engines zero gradients inside step()
    closure: cst.BaseExpression | None = field(default=None, compare=False, hash=False)


@dataclass(frozen=True)
class Reset:
    site: Site
    optimizer: str | None = None  # opt.zero_grad()
    models: tuple[str, ...] = ()  # model.zero_grad(), loops over model.parameters()
    tensors: tuple[str, ...] = ()  # w.grad = None, w.grad.zero_()
    # `p.grad = g`, `p.grad.copy_(g)`, `p.grad.fill_(0.01)`: what was there is replaced by a
    # gradient written by hand, which the next update reads (not stale, not discarded)
    writes: bool = False


Event = Union[Backward, Update, Reset]


@dataclass(frozen=True)
class Names:
    """Local names bound to something else while a body is interpreted."""

    aliases: dict[str, str] = field(default_factory=dict)
    params: dict[str, ParamGroup] = field(default_factory=dict)
    via: tuple[int, ...] = ()  # the calls that led into this body
    # a callee's parameter given a group of parameters (`zero_grads([w, b])`,
    # `sgd_step(model.parameters(), lr)`): what it holds
    groups: dict[str, ParamGroup] = field(default_factory=dict)

    def resolve(self, text: str) -> str:
        head, dot, rest = text.partition(".")
        if head in self.aliases:
            return self.aliases[head] + dot + rest
        return text


def owner_keys(knowledge: Knowledge, names: Names, target: str) -> tuple[str, ...]:
    """The owners a tensor expression stands for (a parameter loop variable expands)."""
    group = names.params.get(target)
    if group is not None:
        return (group.key,) if group.models or group.optimizer else group.tensors
    return (names.resolve(target),)


class Recognizer:
    """Turns statements and calls into events for one module."""

    def __init__(self, knowledge: Knowledge, positions: Positions):
        self.knowledge = knowledge
        self.positions = positions
        self._sites: dict[int, Site] = {}

    def site(self, names: Names, node: cst.CSTNode) -> Site:
        known = self._sites.get(id(node))
        if known is None:
            label = written(node)  # as the user wrote it, on one line
            if len(label) > 60:
                label = label[:57] + "..."
            known = Site(len(self._sites), label, (), node, self.positions)
            self._sites[id(node)] = known
        return replace(known, via=names.via) if names.via else known

    # calls ---------------------------------------------------------------------------------
    def call(self, call: cst.Call, names: Names) -> Event | None:
        func = call.func
        method = last_name(func)
        if method is None:
            return None
        receiver_node = func.value if isinstance(func, cst.Attribute) else None
        receiver = names.resolve(code_of(receiver_node)) if receiver_node is not None else None

        if method in BACKWARD_FUNCTIONS:
            if receiver is not None and _DISTRIBUTED_AUTOGRAD.search(receiver):
                return None  # gradients go to the distributed autograd context, not `.grad`
            return Backward(self.site(names, call), backward_loss_name(call))
        if method == "step" and receiver is not None:
            if receiver in self.knowledge.context_optimizers:
                return None
            return self._step(call, receiver, names)
        if method == "zero_grad" and receiver is not None:
            if receiver in self.knowledge.engines:
                return None
            if self.knowledge.is_optimizer(receiver):
                return Reset(self.site(names, call), optimizer=receiver)
            group = names.params.get(receiver)
            if group is not None:
                return Reset(self.site(names, call), models=group.models, tensors=group.tensors)
            return Reset(self.site(names, call), models=(self.knowledge.model(receiver),))
        if receiver_node is not None:
            return self._tensor_method(call, method, receiver_node, names)
        return None

    def _step(self, call: cst.Call, receiver: str, names: Names) -> Event | None:
        if receiver in self.knowledge.engines:
            return Update((receiver,), self.site(names, call), zeroes_after=True)
        stepped = scaler_stepped(call)
        if stepped is not None:  # scaler.step(opt): an update of the optimizer it is given
            target = dotted(stepped)
            if target is None:
                return None
            return Update((names.resolve(target),), self.site(names, call))
        if not self.knowledge.is_optimizer(receiver):
            return None
        closure = None
        for arg in call.args:
            if arg.keyword is None or arg.keyword.value == "closure":
                closure = arg.value
                break
        return Update((receiver,), self.site(names, call), closure=closure)

    def _tensor_method(
        self, call: cst.Call, method: str, receiver_node: cst.BaseExpression, names: Names
    ) -> Event | None:
        """`w.grad.zero_()` resets; `w.data.sub_(lr * w.grad)` updates."""
        chain = dotted(receiver_node)
        if chain is None:
            return None
        on_grad = chain.endswith(".grad") or chain.endswith(".grad.data")
        if on_grad and method in ("zero_", "fill_", "mul_", "copy_"):
            tensor = chain[: chain.rindex(".grad")]
            if method == "zero_" or (method != "copy_" and _zero_argument(call)):
                return self._reset_tensor(call, tensor, names)
            if method == "mul_" or f"{tensor}.grad" in names_in(
                call.args[0].value if call.args else call
            ):
                return None  # scaling keeps the gradient (clipping, unscaling by hand)
            return self._reset_tensor(call, tensor, names, writes=True)
        if method in UPDATE_METHODS:
            tensor = chain[: -len(".data")] if chain.endswith(".data") else chain
            if f"{tensor}.grad" in names_in(call):
                return self._update_tensor(call, tensor, names)
        return None

    # statements ----------------------------------------------------------------------------
    def assignment(self, node: cst.Assign | cst.AugAssign | cst.Del, names: Names) -> list[Event]:
        """Events made by the assignment itself (calls in its value are handled by the caller)."""
        if isinstance(node, cst.Del):
            text = dotted(node.target)
            if text is not None and text.endswith(".grad"):
                return [self._reset_tensor(node, text[: -len(".grad")], names)]
            return []
        targets = (
            [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
        )
        events: list[Event] = []
        for target in targets:
            text = dotted(target)
            if text is None:
                continue
            if text.endswith(".grad") or text.endswith(".grad.data"):
                if isinstance(node, cst.Assign):
                    tensor = text[: text.rindex(".grad")]
                    if f"{tensor}.grad" in names_in(node.value):
                        continue  # `p.grad = p.grad * scale` keeps the gradient
                    written = not _clears(node.value)
                    events.append(self._reset_tensor(node, tensor, names, writes=written))
                continue
            tensor = text[: -len(".data")] if text.endswith(".data") else text
            if f"{tensor}.grad" in names_in(node.value):
                if isinstance(node, cst.AugAssign) or text.endswith(".data"):
                    events.append(self._update_tensor(node, tensor, names))
        return events

    def _reset_tensor(
        self, node: cst.CSTNode, tensor: str, names: Names, writes: bool = False
    ) -> Reset:
        site = self.site(names, node)
        group = names.params.get(tensor)
        if group is not None and group.optimizer is not None:
            return Reset(site, optimizer=group.optimizer, writes=writes)
        if group is not None:
            return Reset(site, models=group.models, tensors=group.tensors, writes=writes)
        return Reset(site, tensors=(names.resolve(tensor),), writes=writes)

    def _update_tensor(self, node: cst.CSTNode, tensor: str, names: Names) -> Update:
        return Update(owner_keys(self.knowledge, names, tensor), self.site(names, node))


def _clears(value: cst.BaseExpression) -> bool:
    """`None`, or a tensor of zeros: the gradient is reset, nothing is written."""
    if isinstance(value, cst.Name) and value.value == "None":
        return True
    return isinstance(value, cst.Call) and last_name(value.func) in (
        "zeros_like",
        "zeros",
        "new_zeros",
    )


def _zero_argument(call: cst.Call) -> bool:
    return bool(call.args) and code_of(call.args[0].value) in ("0", "0.0", "0.")


def written_group(
    value: cst.BaseExpression, knowledge: Knowledge, names: Names
) -> ParamGroup | None:
    """The parameters `value` spells out: `model.parameters()` (or `named_parameters()`), or a
    list or tuple of names (`[w, b]`)."""
    if isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute):
        if value.func.attr.value in ("parameters", "named_parameters"):
            receiver = dotted(value.func.value)
            if receiver is not None:
                return ParamGroup(models=(knowledge.model(strip_wrapper(names.resolve(receiver))),))
    if isinstance(value, (cst.List, cst.Tuple)):
        items = tuple(dotted(e.value) for e in value.elements)
        if all(items):
            return ParamGroup(tensors=tuple(names.resolve(i) for i in items if i))
    return None


def parameter_group(iterable: cst.BaseExpression, knowledge: Knowledge, names: Names) -> ParamGroup:
    """What `for p in <iterable>` ranges over, when it ranges over parameters."""
    if isinstance(iterable, cst.Subscript):
        collection = dotted(iterable.value)
        resolved = names.resolve(collection) if collection is not None else ""
        if resolved.endswith(_GROUPS):  # `group["params"]` of a loop over `opt.param_groups`
            return ParamGroup(optimizer=resolved[: -len(_GROUPS)])
    written = written_group(iterable, knowledge, names)
    if written is not None:
        return written
    text = dotted(iterable)
    if text is not None and text in names.groups:
        return names.groups[text]
    if text is not None and text in knowledge.list_literals:
        return ParamGroup(tensors=knowledge.list_literals[text])
    if text is not None and text in knowledge.parameter_lists:
        return ParamGroup(models=(knowledge.parameter_lists[text],))
    return ParamGroup(tensors=(code_of(iterable),))


_GROUPS = ".param_groups[*]"


def collective(stmt: cst.For, knowledge: Knowledge, names: Names) -> Collective | None:
    """What a loop acts on when it acts on a whole collection at once:
    - `for p in model.parameters()` (or `named_parameters()`, a list of tensors) whose body
      touches `p.grad`; `for p, q in zip(a.parameters(), b.parameters())` pairs two groups;
    - `for opt in optimizers` whose body only resets or steps `opt` (no backward): two such
      loops over the same collection cover the same optimizers;
    - `for group in opt.param_groups`: the optimizer's parameters, group by group."""
    target, iterable = stmt.target, stmt.iter
    iterated = dotted(iterable)
    if iterated is None and _values_of(iterable):
        iterated = code_of(iterable)  # `for opt in optimizers.values():`
    if isinstance(target, cst.Name) and iterated is not None:
        resolved = names.resolve(iterated)
        if resolved.endswith(".param_groups"):
            return Collective(aliases={target.value: resolved + "[*]"})
        if _steps_or_resets_only(stmt, target.value):
            return Collective(aliases={target.value: resolved + "[*]"})
    pairs = _zipped(target, iterable)
    if not any(
        f"{name}.grad" in names_in(node) for name, _ in pairs for node in body_of(stmt.body)
    ):
        return None
    # only the variables the body resets or updates stand for their group: a variable whose
    # gradient is only read (compared, logged) adds no owner to follow
    acted = [(name, group) for name, group in pairs if _acts_on(stmt.body, name)]
    return Collective(
        params={name: parameter_group(group, knowledge, names) for name, group in acted}
    )


def _values_of(iterable: cst.BaseExpression) -> bool:
    """`optimizers.values()`: the same collection every time it is asked for."""
    return (
        isinstance(iterable, cst.Call)
        and not iterable.args
        and isinstance(iterable.func, cst.Attribute)
        and iterable.func.attr.value == "values"
        and dotted(iterable.func.value) is not None
    )


def _acts_on(body: cst.BaseSuite, name: str) -> bool:
    """The body changes `name` or its gradient: an assignment to it or through it, `del`, or
    an in-place method (`name.grad.zero_()`, `name.data.sub_(...)`, `name.add_(...)`)."""
    prefix = f"{name}."
    for node in walk(body):
        if isinstance(node, cst.Call):
            func = dotted(node.func) or ""
            if func.startswith(prefix) and func.endswith("_") and not func.endswith("__"):
                return True
        elif isinstance(node, (cst.Assign, cst.AugAssign, cst.Del)):
            targets = (
                [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
            )
            for target in targets:
                text = dotted(target) or ""
                if text == name or text.startswith(prefix):
                    return True
    return False


def _zipped(
    target: cst.BaseExpression, iterable: cst.BaseExpression
) -> list[tuple[str, cst.BaseExpression]]:
    """Loop variables over parameters and what each ranges over."""
    if (
        isinstance(target, cst.Tuple)
        and isinstance(iterable, cst.Call)
        and last_name(iterable.func) == "zip"
        and len(iterable.args) == len(target.elements)
    ):
        out = []
        for element, arg in zip(target.elements, iterable.args):
            name = dotted(element.value)
            if name is not None and _ranges_over_parameters(arg.value):
                out.append((name, arg.value))
        return out
    if isinstance(target, cst.Tuple) and target.elements:
        target = target.elements[-1].value  # `for name, p in model.named_parameters()`
    name = dotted(target)
    return [(name, iterable)] if name is not None else []


def _ranges_over_parameters(iterable: cst.BaseExpression) -> bool:
    if isinstance(iterable, cst.Call) and isinstance(iterable.func, cst.Attribute):
        return iterable.func.attr.value in ("parameters", "named_parameters")
    return dotted(iterable) is not None or isinstance(iterable, (cst.List, cst.Tuple))


def _steps_or_resets_only(stmt: cst.For, variable: str) -> bool:
    """The body calls `variable.zero_grad()`, `variable.step()` or a scaler's `step(variable)` /
    `unscale_(variable)`, and runs no backward."""
    acts = False
    for node in walk(stmt.body):
        if isinstance(node, cst.Call):
            name = last_name(node.func)
            if name in BACKWARD_FUNCTIONS:
                return False
            receiver = node.func.value if isinstance(node.func, cst.Attribute) else None
            if name in ("zero_grad", "step") and receiver is not None:
                acts = acts or dotted(receiver) == variable
            if name in ("step", "unscale_") and receiver is not None and node.args:
                # `scaler.step(opt)`, `scaler.unscale_(opt)` act on the optimizer they are given
                given = scaler_stepped(node) if name == "step" else node.args[0].value
                acts = acts or (given is not None and dotted(given) == variable)
    return acts
