"""A module read once before any path is followed: its functions, classes, and gradient owners."""

from __future__ import annotations

from dataclasses import dataclass, replace

import libcst as cst

from gradlint.analysis.events import (
    Event,
    Names,
    Recognizer,
    Reset,
    Update,
    parameter_group,
    parameter_variable,
)
from gradlint.analysis.owners import Knowledge
from gradlint.analysis.syntax import body_of, code_of, dotted, last_name, walk


@dataclass
class ModuleIndex:
    functions: dict[str, cst.FunctionDef]
    classes: dict[str, dict[str, cst.FunctionDef]]
    enclosing_class: dict[int, str]  # id(FunctionDef) -> class name for methods
    owners: dict[str, str]  # owner key -> "optimizer" | "engine" | "tensor" | "group"
    repeated: set[int]  # ids of functions a framework calls once per batch


def index_module(module: cst.Module, knowledge: Knowledge, recognizer: Recognizer) -> ModuleIndex:
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
    for node in walk(module):
        # ignite: Engine(update_fn) calls update_fn once per batch
        if isinstance(node, cst.Call) and last_name(node.func) == "Engine" and node.args:
            handler = functions.get(dotted(node.args[0].value) or "")
            if handler is not None:
                repeated.add(id(handler))
    owners = _owners(module, knowledge, recognizer)
    return ModuleIndex(functions, classes, enclosing, owners, repeated)


def _owners(module: cst.Module, knowledge: Knowledge, recognizer: Recognizer) -> dict[str, str]:
    """Every gradient owner the module's events name, found before any path is followed."""
    owners: dict[str, str] = {}

    def note(event: Event | None) -> None:
        if isinstance(event, Update):
            for key in event.owners:
                kind = (
                    "engine"
                    if event.zeroes_after
                    else (
                        "optimizer"
                        if knowledge.is_optimizer(key) or key in knowledge.optimizers
                        else ("group" if key.endswith(".parameters()") else "tensor")
                    )
                )
                owners.setdefault(key, kind)
        elif isinstance(event, Reset):
            if event.optimizer:
                owners.setdefault(event.optimizer, "optimizer")
            for tensor in event.tensors:
                owners.setdefault(tensor, "tensor")

    def visit(node: cst.CSTNode, names: Names) -> None:
        if isinstance(node, cst.For):
            name = parameter_variable(node)
            if name is not None:
                group = parameter_group(node.iter, knowledge, names)
                names = replace(names, params={**names.params, name: group})
                if group.models:
                    owners.setdefault(group.key, "group")
        if isinstance(node, cst.Call):
            note(recognizer.call(node, names))
        elif isinstance(node, (cst.Assign, cst.AugAssign, cst.Del)):
            for event in recognizer.assignment(node, names):
                note(event)
        for child in node.children:
            visit(child, names)

    visit(module, Names())
    for optimizer in knowledge.optimizers:
        owners.setdefault(optimizer, "optimizer")
    for engine in knowledge.engines:
        owners[engine] = "engine"
    return owners
