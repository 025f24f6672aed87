"""Recognise the calls the order rules follow besides backward, update and reset: gradient
clipping, a GradScaler's scaled backward and `unscale_`, and learning-rate scheduler steps.

Like `events.Recognizer`, recognition is syntactic and uses the module's `Knowledge`; the path
analysis calls `TrainingCalls.event` on every call it meets, with the names bound at that
point (a helper's `scheduler` parameter stands for the caller's object).
"""

from __future__ import annotations

import re

import libcst as cst

from gradlint.analysis.accumulation import Keepers, kept_by
from gradlint.analysis.events import Names, Recognizer
from gradlint.analysis.knowledge import Knowledge, strip_wrapper
from gradlint.analysis.syntax import Listing, argument, code_of, dotted, last_name, names_in
from gradlint.analysis.torch_api import IN_PLACE_METHODS, Imports
from gradlint.analysis.tracking import (
    Accumulate,
    Clip,
    InPlace,
    ModeSwitch,
    PathEvent,
    ScaledBackward,
    SchedulerStep,
    Unscale,
)

# torch.nn.utils.clip_grad_norm_, nn.utils..., utils.clip_grad.clip_grad_value_, ...
_CLIP_PATH = re.compile(
    r"^(?:torch\.)?(?:nn\.)?utils(?:\.clip_grad)?\.clip_grad_(?:norm_?|value_)$"
)
_INFINITY = frozenset({"float('inf')", 'float("inf")', "math.inf", "torch.inf", "np.inf", "inf"})
_SCHEDULER_CLASSES = frozenset(
    {
        "LambdaLR",
        "MultiplicativeLR",
        "StepLR",
        "MultiStepLR",
        "ConstantLR",
        "LinearLR",
        "ExponentialLR",
        "PolynomialLR",
        "CosineAnnealingLR",
        "ChainedScheduler",
        "SequentialLR",
        "CyclicLR",
        "OneCycleLR",
        "CosineAnnealingWarmRestarts",
    }
)
_SCHEDULE_FUNCTION = re.compile(r"^get_\w*schedule\w*$")
# what a learning-rate scheduler is called when nothing else is known of it
_SCHEDULER_NAME = re.compile(
    r"^(?:lr_)?sched(?:uler)?s?(?:\[\*\])?$"
)  # `schedulers[*]`: each of a list
# schedulers that step on a metric (usually once per epoch) or are not learning-rate ones
_NOT_LR = frozenset({"ReduceLROnPlateau"})
_SCALER_CLASSES = frozenset({"GradScaler", "ShardedGradScaler"})  # torch.amp, torch.cuda.amp


def is_clip(call: cst.Call, imports: Imports) -> bool:
    """A call of torch.nn.utils' clip_grad_norm_ / clip_grad_value_, under any import spelling
    (`nn.utils.clip_grad_norm_` is taken for torch's even where `nn` is not seen imported).

    `accelerator.clip_grad_norm_(...)` is not one: Accelerate unscales before clipping.
    """
    name = dotted(call.func)
    if name is None:
        return False
    qualified = imports.qualified(name)
    return bool(_CLIP_PATH.match(name) or (qualified and _CLIP_PATH.match(qualified)))


def clipped_parameters(call: cst.Call) -> cst.BaseExpression | None:
    return argument(call, 0, "parameters")


def measures_only(call: cst.Call) -> bool:
    """`clip_grad_norm_(params, float("inf"))`: the usual way to compute the gradient norm for
    logging; it changes no gradient."""
    if last_name(call.func) not in ("clip_grad_norm_", "clip_grad_norm"):
        return False
    limit = argument(call, 1, "max_norm")
    return limit is not None and code_of(limit).replace(" ", "") in _INFINITY


def schedulers(listed: Listing, knowledge: Knowledge) -> dict[str, str]:
    """scheduler name -> the optimizer it was built on, for the optimizers the module knows:
    names assigned from `torch.optim.lr_scheduler.*` or a `get_*_schedule*` function (Hugging
    Face transformers) given the optimizer."""
    found: dict[str, str] = {}
    for node in listed.of_type(cst.Assign):
        assert isinstance(node, cst.Assign)
        if len(node.targets) != 1 or not isinstance(node.value, cst.Call):
            continue
        name = dotted(node.targets[0].target)
        call = node.value
        tail = last_name(call.func) or ""
        if tail not in _SCHEDULER_CLASSES and not _SCHEDULE_FUNCTION.match(tail):
            continue
        given = argument(call, 0, "optimizer")
        optimizer = dotted(given) if given is not None else None
        if name is None or optimizer is None or not knowledge.is_optimizer(optimizer):
            continue
        found[name] = optimizer
    return found


def made_by(listed: Listing, callees: frozenset[str]) -> set[str]:
    """Names assigned from a call of one of `callees` (by the last name called):
    `scaler = torch.amp.GradScaler("cuda")` for {"GradScaler"}."""
    found: set[str] = set()
    for node in listed.of_type(cst.Assign):
        assert isinstance(node, cst.Assign)
        if isinstance(node.value, cst.Call) and last_name(node.value.func) in callees:
            for target in node.targets:
                name = dotted(target.target)
                if name is not None:
                    found.add(name)
    return found


class TrainingCalls:
    """The events of clipping, loss scaling and scheduling, for one module."""

    def __init__(
        self, knowledge: Knowledge, recognizer: Recognizer, listed: Listing, imports: Imports
    ):
        self.knowledge = knowledge
        self.recognizer = recognizer
        self.imports = imports
        self.scalers = made_by(listed, _SCALER_CLASSES)
        self.schedulers = schedulers(listed, knowledge)
        # schedulers stepped on a metric (usually once per epoch), not once per update
        self.not_lr = made_by(listed, _NOT_LR)
        self.keepers = Keepers(listed)

    def events(self, node: cst.CSTNode, names: Names) -> tuple[PathEvent, ...]:
        """The events of a call, or of an assignment: a write into a tensor in place, a value
        kept in a running sum (`total += loss` is both)."""
        found = [self._kept(node, names)]
        if isinstance(node, cst.Call):
            found.append(self._call(node, names))
        else:
            found.insert(0, self._written(node, names))
        return tuple(e for e in found if e is not None)

    def _kept(self, node: cst.CSTNode, names: Names) -> PathEvent | None:
        kept = kept_by(node)
        if kept is None and isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
            receiver = dotted(node.func.value)
            if receiver is not None:
                kept = self.keepers.kept(node, names.resolve(receiver))
        if kept is None:
            return None
        return Accumulate(self.recognizer.site(names, node), names.resolve(kept.target), kept)

    def _call(self, call: cst.Call, names: Names) -> PathEvent | None:
        func = call.func
        method = last_name(func)
        if method is None:
            return None
        if method in IN_PLACE_METHODS and isinstance(func, cst.Attribute):
            return self._in_place(call, func.value, names)
        if method.startswith("clip_grad_"):
            if not is_clip(call, self.imports) or measures_only(call):
                return None
            return Clip(self.recognizer.site(names, call), self._clipped(call, names), call)
        if not isinstance(func, cst.Attribute):
            return None
        receiver = dotted(func.value)
        if method == "backward" and isinstance(func.value, cst.Call):
            inner = func.value.func
            if isinstance(inner, cst.Attribute) and inner.attr.value == "scale":
                scaler = dotted(inner.value)
                if scaler is not None and self._is_scaler(names.resolve(scaler)):
                    return ScaledBackward(self.recognizer.site(names, call), names.resolve(scaler))
            return None
        if receiver is None:
            return None
        receiver = names.resolve(receiver)
        if method == "unscale_" and self._is_scaler(receiver):
            given = argument(call, 0, "optimizer")
            optimizer = dotted(given) if given is not None else None
            return Unscale(
                self.recognizer.site(names, call),
                receiver,
                names.resolve(optimizer) if optimizer is not None else None,
            )
        if method == "step" and not call.args:
            return self._scheduler_step(call, receiver, names)
        if method in ("train", "eval"):
            return self._mode_switch(call, method, receiver, names)
        return None

    def _written(self, statement: cst.CSTNode, names: Names) -> PathEvent | None:
        """`w -= lr * w.grad`, `w[0] = 1.0`, `w[mask] *= 0`."""
        target: cst.BaseExpression | None = None
        if isinstance(statement, cst.AugAssign):
            target = statement.target
        elif isinstance(statement, cst.Assign) and len(statement.targets) == 1:
            target = statement.targets[0].target
            if not isinstance(target, cst.Subscript):
                return None  # `w = ...` binds a name, it writes into no tensor
        if target is None:
            return None
        if isinstance(target, cst.Subscript):
            target = target.value
        return self._in_place(statement, target, names)

    def _in_place(
        self, node: cst.CSTNode, target: cst.BaseExpression, names: Names
    ) -> PathEvent | None:
        chain = dotted(target)
        if chain is None:
            return None
        tensor = chain[: -len(".data")] if chain.endswith(".data") else chain
        return InPlace(
            self.recognizer.site(names, node),
            tensor,
            through_data=tensor != chain,
            reads_grad=f"{tensor}.grad" in names_in(node),
        )

    def _mode_switch(
        self, call: cst.Call, method: str, receiver: str, names: Names
    ) -> PathEvent | None:
        """`model.eval()`, `model.train()`, `model.train(False)` of a model of the module."""
        model = self.knowledge.model(strip_wrapper(receiver))
        if model not in self.knowledge.models or len(call.args) > 1:
            return None
        training: bool | None = method == "train"
        if method == "eval" and call.args:
            return None
        if method == "train" and call.args:
            flag = code_of(call.args[0].value)
            training = {"True": True, "False": False}.get(flag)
        return ModeSwitch(self.recognizer.site(names, call), model, training)

    def _is_scaler(self, name: str) -> bool:
        return name in self.scalers or "scaler" in name.rsplit(".", 1)[-1].lower()

    def _scheduler_step(self, call: cst.Call, receiver: str, names: Names) -> PathEvent | None:
        if receiver in self.not_lr or self.knowledge.is_optimizer(receiver):
            return None
        optimizer = self.schedulers.get(receiver)
        if optimizer is None and not _SCHEDULER_NAME.match(receiver.rsplit(".", 1)[-1]):
            return None
        return SchedulerStep(self.recognizer.site(names, call), receiver, optimizer)

    def _clipped(self, call: cst.Call, names: Names) -> tuple[str, ...] | None:
        """The models whose parameters a clip covers, when the argument says."""
        parameters = clipped_parameters(call)
        if parameters is None:
            return None
        if isinstance(parameters, cst.Call) and isinstance(parameters.func, cst.Attribute):
            if parameters.func.attr.value in ("parameters", "named_parameters"):
                receiver = dotted(parameters.func.value)
                if receiver is not None:
                    return (self.knowledge.model(strip_wrapper(names.resolve(receiver))),)
            return None
        text = dotted(parameters)
        if text is not None and names.resolve(text) in self.knowledge.parameter_lists:
            return (self.knowledge.parameter_lists[names.resolve(text)],)
        return None
