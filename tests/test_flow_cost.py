"""The path analysis's work grows with the code, not with the product of its loops' passes.

Work is counted, not timed (timings on shared machines are noise): the number of path states
that enter a block. A function with its own training loop, called inside k nested loops over
literal options (accelerate's test scripts run every test so), used to cost about three times
more per level of nesting and fourteen times more at the fifth; each level now at most doubles
it (the first pass of each enclosing loop is a state of its own) and usually costs much less.
"""

from __future__ import annotations

import pytest

from gradlint.analysis import flow
from gradlint.config import Settings
from gradlint.engine import lint_text

TRAIN = """import torch

def run(option=False, k=2):
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for i, (x, y) in enumerate(loader):
        loss = ((model(x) - y) ** 2).mean() / k
        loss.backward()
        if (i + 1) % k == 0 or option:
            opt.step()
            opt.zero_grad()
        if i == 0 and option:
            print("first")

def main(rank=0):
"""


def nested(depth: int, stale: bool = False) -> str:
    """`run(...)` inside `depth` nested loops over `[True, False]`."""
    lines = [f"{'    ' * (d + 1)}for o{d} in [True, False]:" for d in range(depth)]
    indent = "    " * (depth + 1)
    lines += [f"{indent}if rank == 0:", f"{indent}    print(o0)", f"{indent}run(o0)"]
    if stale:  # a second training loop that never resets, at the innermost level
        lines += [
            f"{indent}for x, y in loader:",
            f"{indent}    shared_loss(x, y).backward()",
            f"{indent}    shared_opt.step()",
        ]
    return TRAIN + "\n".join(lines) + "\n\nif __name__ == '__main__':\n    main()\n"


def work(text: str, monkeypatch: pytest.MonkeyPatch) -> tuple[int, list[tuple[str, int]]]:
    entered = 0
    follow = flow.Flow._block

    def counting(self: flow.Flow, stmts: list, states: set, ctx: flow.Context) -> flow.Outcome:
        nonlocal entered
        entered += len(states)
        return follow(self, stmts, states, ctx)

    with monkeypatch.context() as patch:
        patch.setattr(flow.Flow, "_block", counting)
        found = lint_text("nested.py", text, Settings())
    return entered, [(d.code, d.line) for d in found]


def test_nested_option_loops_cost_at_most_twice_per_level(monkeypatch: pytest.MonkeyPatch) -> None:
    costs = [work(nested(depth), monkeypatch)[0] for depth in range(1, 7)]
    for shallower, deeper in zip(costs, costs[1:]):
        assert deeper <= 2 * shallower, costs


def test_a_finding_deep_in_nested_loops_is_still_proved(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remembered answers replay their findings: the stale loop is reported at every depth
    (and so is run()'s backward, which the same path reaches after `shared_opt.step()`)."""
    for depth in range(1, 6):
        text = nested(depth, stale=True)
        backward = 1 + text.splitlines().index(
            f"{'    ' * (depth + 2)}shared_loss(x, y).backward()"
        )
        _, found = work(text, monkeypatch)
        assert found == [("GL001", 8), ("GL001", backward)], depth
