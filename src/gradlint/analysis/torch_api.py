"""What the calls of torch and of the training libraries mean, answered once for every rule.

Every rule that asks "which tensor does this backward start from?" asks it here, so that a
backward run through a library (`accelerator.backward(loss)`, Lightning's
`self.manual_backward(loss)`, a DeepSpeed engine) means the same to the path analysis and to
the order rules.
"""

from __future__ import annotations

import re

import libcst as cst

from gradlint.analysis.syntax import dotted

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
        return _loss_argument(call)
    if isinstance(receiver, cst.Call):
        inner = receiver.func
        if isinstance(inner, cst.Attribute) and inner.attr.value == "scale" and receiver.args:
            return receiver.args[0].value  # scaler.scale(loss).backward()
    return receiver


def backward_loss_name(call: cst.Call) -> str | None:
    """The name of the tensor a backward starts from, when it is a plain name."""
    loss = backward_loss(call)
    return loss.value if isinstance(loss, cst.Name) else None


def _loss_argument(call: cst.Call) -> cst.BaseExpression | None:
    for arg in call.args:
        if arg.keyword is None and arg.star == "":
            return arg.value
        if arg.keyword is not None and arg.keyword.value in _LOSS_KEYWORDS:
            return arg.value
    return None
