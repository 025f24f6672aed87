"""Which tensor a backward starts from, answered once (`analysis.torch_api`) for the path
analysis (GL001/GL002) and the order rules (GL105/GL106) alike."""

from __future__ import annotations

import libcst as cst
import pytest

from gradlint.analysis.events import Backward, Names, Recognizer
from gradlint.analysis.knowledge import scan_module
from gradlint.analysis.positions import Positions
from gradlint.analysis.syntax import argument, walk
from gradlint.analysis.torch_api import (
    backward_loss,
    backward_loss_name,
    callers_by_name,
    from_torch,
    grad_enabled,
    imports_of,
    makes_leaf,
    scaler_stepped,
)
from gradlint.tree import Tree


def call(source: str) -> cst.Call:
    expression = cst.parse_expression(source)
    assert isinstance(expression, cst.Call)
    return expression


@pytest.mark.parametrize(
    ("source", "loss"),
    [
        ("loss.backward()", "loss"),
        ("loss.backward(retain_graph=True)", "loss"),
        ("scaler.scale(loss).backward()", "loss"),
        ("self.scaler.scale(total).backward()", "total"),
        ("model(x).sum().backward()", "model(x).sum()"),
        ("torch.autograd.backward(loss)", "loss"),
        ("torch.autograd.backward(tensors=loss)", "loss"),
        ("accelerator.backward(loss)", "loss"),
        ("self.accelerator.backward(loss / k)", "loss / k"),
        ("fabric.backward(loss)", "loss"),
        ("model_engine.backward(loss)", "loss"),  # DeepSpeed
        ("trainer.backward(loss)", "loss"),  # not `trainer`
        ("self.trainer.strategy.backward(loss, optimizer)", "loss"),
        ("self.manual_backward(loss)", "loss"),
        ("self.manual_backward(loss=out.loss)", "out.loss"),
    ],
)
def test_the_tensor_a_backward_starts_from(source: str, loss: str) -> None:
    found = backward_loss(call(source))
    assert found is not None and cst.Module(body=[]).code_for_node(found) == loss


@pytest.mark.parametrize(
    "source", ["opt.step()", "backward(loss)", "accelerator.backward()", "print(loss)"]
)
def test_no_tensor_for_what_is_no_backward_with_a_tensor(source: str) -> None:
    assert backward_loss(call(source)) is None


def test_the_path_analysis_names_the_same_loss() -> None:
    """The events the path analysis follows carry the name `backward_loss` gives."""
    module = cst.parse_module("trainer.backward(loss)\nscaler.scale(l2).backward()\n")
    recognizer = Recognizer(scan_module(module), Positions(module))
    calls = [s.body[0].value for s in module.body]  # type: ignore[attr-defined]
    events = [recognizer.call(c, Names()) for c in calls]
    assert all(isinstance(e, Backward) for e in events)
    assert [e.loss for e in events] == ["loss", "l2"]  # type: ignore[union-attr]
    assert [backward_loss_name(c) for c in calls] == ["loss", "l2"]


GRAD_MODES = """
import torch

def update(w):
    w.sub_(1)

def decorated(w):
    w.sub_(2)

@torch.no_grad()
def quiet(w):
    w.sub_(3)

def uncalled(w):
    w.sub_(4)

update(a)
with torch.no_grad():
    update(b)
    decorated(c)
with torch.inference_mode(False):
    w.sub_(5)
with torch.set_grad_enabled(False):
    w.sub_(6)
"""


@pytest.mark.parametrize(
    ("amount", "certainly", "possibly"),
    [
        ("1", False, True),  # called with recording on and off
        ("2", False, False),  # called under no_grad only
        ("3", False, False),  # @torch.no_grad()
        ("4", False, True),  # called nowhere in view
        ("5", True, True),  # inference_mode(False) leaves recording on
        ("6", False, False),
    ],
)
def test_grad_mode_where_a_statement_runs(amount: str, certainly: bool, possibly: bool) -> None:
    module = cst.parse_module(GRAD_MODES)
    tree = Tree(module)
    calls = [node for node in walk(module) if isinstance(node, cst.Call)]
    (update,) = [c for c in calls if cst.Module(body=[]).code_for_node(c).endswith(f"({amount})")]
    callers = callers_by_name(calls)
    assert grad_enabled(update, tree, callers, certainly=True) is certainly
    assert grad_enabled(update, tree, callers, certainly=False) is possibly


@pytest.mark.parametrize(
    ("source", "stepped"),
    [
        ("scaler.step(optimizer)", "optimizer"),
        ("self.grad_scaler.step(self.optimizer)", "self.optimizer"),
        ("amp_scaler.step(optimizer=opt)", "opt"),
        ("scaler.step()", None),
        ("optimizer.step()", None),
        ("scaler.update()", None),
        ("scheduler.step(optimizer)", None),  # a scheduler, not a scaler
    ],
)
def test_the_optimizer_a_scaler_steps(source: str, stepped: str | None) -> None:
    found = scaler_stepped(call(source))
    assert (cst.Module(body=[]).code_for_node(found) if found is not None else None) == stepped


@pytest.mark.parametrize(
    ("source", "position", "names", "found"),
    [
        ("SGD(params, lr=0.1)", 0, ("params",), "params"),
        ("SGD(lr=0.1, params=ps)", 0, ("params",), "ps"),
        ("clip(ps, 1.0)", 1, ("max_norm",), "1.0"),
        ("clip(*groups, 1.0)", 1, ("max_norm",), None),  # after *args: position unknown
        ("f(a, **extra)", 1, (), None),
        ("backward(loss, retain_graph=True)", None, ("retain_graph",), "True"),
        ("backward(loss)", None, ("retain_graph",), None),
    ],
)
def test_an_argument_by_name_or_position(
    source: str, position: int | None, names: tuple[str, ...], found: str | None
) -> None:
    value = argument(call(source), position, *names)
    assert (cst.Module(body=[]).code_for_node(value) if value is not None else None) == found


@pytest.mark.parametrize(
    ("source", "certain", "possible", "fresh"),
    [
        ("torch.zeros(3, requires_grad=True)", True, True, True),
        ("torch.zeros(3, requires_grad=train)", False, True, True),
        ("torch.zeros(3, requires_grad=False)", False, False, True),
        ("torch.zeros(3)", False, False, True),
        ("nn.Parameter(torch.zeros(3))", True, True, True),
        ("nn.Parameter(w, requires_grad=False)", False, False, True),
        ("torch.randn(2).requires_grad_()", True, True, True),
        ("w.requires_grad_(False)", False, False, False),
        ("Variable(torch.zeros(3), requires_grad=True)", True, True, True),
        ("Variable(torch.zeros(3), True)", True, True, True),
        ("make_weights(requires_grad=True)", True, True, False),  # a leaf, maybe not fresh
    ],
)
def test_which_calls_make_a_leaf(source: str, certain: bool, possible: bool, fresh: bool) -> None:
    value = call(source)
    assert makes_leaf(value) is certain
    assert makes_leaf(value, certainly=False) is possible
    assert from_torch(value) is fresh


IMPORTS = """
import torch
import torch.nn.utils as nnu
import numpy as np
from torch.autograd import Variable as V
from torch import autograd
from . import helpers
from mylib import *
"""


@pytest.mark.parametrize(
    ("name", "qualified"),
    [
        ("torch.nn.utils.clip_grad_norm_", "torch.nn.utils.clip_grad_norm_"),
        ("nnu.clip_grad_value_", "torch.nn.utils.clip_grad_value_"),
        ("V", "torch.autograd.Variable"),
        ("autograd.Variable", "torch.autograd.Variable"),
        ("np.zeros", "numpy.zeros"),
        ("helpers.train", None),  # a relative import binds nothing known
        ("Variable", None),  # from a star import, or not imported at all
        ("model.step", None),
    ],
)
def test_names_qualified_by_the_imports(name: str, qualified: str | None) -> None:
    module = cst.parse_module(IMPORTS)
    imports = imports_of(n for n in walk(module) if isinstance(n, (cst.Import, cst.ImportFrom)))
    assert imports.qualified(name) == qualified


def test_a_parameter_group_key_knows_its_models() -> None:
    """A loop over `a.parameters()` and `b.parameters()` (zipped) owns one gradient group, keyed
    by a string the states sort and print that still knows its models (not parsed back)."""
    import pickle

    from gradlint.analysis.events import GroupKey, ParamGroup

    key = ParamGroup(models=("encoder", "decoder")).key
    assert isinstance(key, GroupKey)
    assert key == "encoder.parameters(),decoder.parameters()"
    assert key.models == ("encoder", "decoder")
    again = pickle.loads(pickle.dumps(key))
    assert again == key and again.models == key.models
    assert not isinstance(ParamGroup(tensors=("w", "b")).key, GroupKey)
