"""Where a node sits in its module: parents, statements, blocks and loops. Used by fixes."""

from __future__ import annotations

import libcst as cst

from gradlint.analysis.syntax import Listing, children, walk


class Tree:
    def __init__(self, module: cst.Module, listed: Listing | None = None):
        self.module = module
        self.parent: dict[int, cst.CSTNode] = {}
        if listed is not None:
            for node in listed.nodes:
                for child in listed.kids[id(node)]:
                    self.parent[id(child)] = node
            return
        for node in walk(module):
            for child in children(node):
                self.parent[id(child)] = node

    def shadowed(self, node: cst.CSTNode, name: str) -> bool:
        """Whether an enclosing function has a parameter named like `name`'s first part, so
        that there the name is another variable (`self` aside)."""
        head = name.split(".", 1)[0]
        if head == "self":
            return False
        for ancestor in self.ancestors(node):
            if isinstance(ancestor, (cst.FunctionDef, cst.Lambda)):
                params = ancestor.params
                every = [*params.posonly_params, *params.params, *params.kwonly_params]
                if any(p.name.value == head for p in every):
                    return True
        return False

    def ancestors(self, node: cst.CSTNode) -> list[cst.CSTNode]:
        out = []
        while id(node) in self.parent:
            node = self.parent[id(node)]
            out.append(node)
        return out

    def statement(self, node: cst.CSTNode) -> cst.BaseStatement | None:
        """The statement line (or compound statement) a node belongs to."""
        if isinstance(node, cst.BaseStatement):
            return node
        for ancestor in self.ancestors(node):
            if isinstance(ancestor, cst.BaseStatement):
                return ancestor
        return None

    def function(self, node: cst.CSTNode) -> cst.FunctionDef | None:
        """The function a node is in (None at a module's top level)."""
        for ancestor in self.ancestors(node):
            if isinstance(ancestor, cst.FunctionDef):
                return ancestor
        return None

    def loops(self, node: cst.CSTNode) -> list[cst.For | cst.While]:
        """Enclosing loops of the same function, innermost first."""
        out: list[cst.For | cst.While] = []
        for ancestor in self.ancestors(node):
            if isinstance(ancestor, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
                break
            if isinstance(ancestor, (cst.For, cst.While)):
                out.append(ancestor)
        return out

    def conditional_within(self, node: cst.CSTNode, loop: cst.CSTNode) -> bool:
        """Whether `node` runs only on some passes of `loop` (under if/except/match/else)."""
        for ancestor in self.ancestors(node):
            if ancestor is loop:
                return False
            if isinstance(
                ancestor, (cst.If, cst.Else, cst.ExceptHandler, cst.MatchCase, cst.For, cst.While)
            ):
                return True
        return True

    def next_statement(self, statement: cst.CSTNode) -> cst.CSTNode | None:
        """The statement after `statement` in its block, if any."""
        parent = self.parent.get(id(statement))
        body = list(getattr(parent, "body", ()) or ())
        for index, sibling in enumerate(body):
            if sibling is statement:
                return body[index + 1] if index + 1 < len(body) else None
        return None
