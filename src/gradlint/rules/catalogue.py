"""Every rule's code, name, summary, fixability and trigger words, without the rules' code.

Listing the rules, checking a selection, deciding whether a file needs parsing and naming a
rule in a report need only these facts; importing the rules themselves costs libcst and every
analysis module. The rule modules stay the source of truth: the entries below are written from
them by `python -m gradlint.rules.catalogue`, and a test fails when they differ.
"""

from __future__ import annotations

from dataclasses import dataclass

from gradlint.triggers import Trigger


@dataclass(frozen=True)
class Entry:
    code: str
    name: str
    summary: str
    fixable: bool
    triggers: tuple[Trigger, ...]


# --- written by `python -m gradlint.rules.catalogue` -------------------------------------------
# fmt: off
CATALOGUE: dict[str, Entry] = {
    entry.code: entry
    for entry in (
        Entry('GL001', 'stale-gradients', 'An update reads gradient that an earlier update already used: no reset between them', True, ('backward(',)),
        Entry('GL002', 'discarded-gradients', 'A reset throws away gradient before the update that should read it', True, ('backward(',)),
        Entry('GL101', 'accumulated-loss', 'A loss that requires grad is accumulated across iterations: every graph stays alive', True, ('backward(',)),
        Entry('GL102', 'clip-scaled-gradients', 'Gradient clipping with a GradScaler but without `scaler.unscale_(optimizer)` first', True, ((('.backward', '.manual_backward'), 'clip_grad', 'scale('),)),
        Entry('GL103', 'misplaced-clipping', 'Gradient clipping outside the window between the last backward and the update', True, ((('.backward', '.manual_backward'), 'clip_grad'),)),
        Entry('GL104', 'scheduler-before-optimizer', '`lr_scheduler.step()` before `optimizer.step()` in the same iteration', True, ((('.backward', '.manual_backward'), 'sched', 'step('),)),
        Entry('GL105', 'backward-after-step', '`backward()` on a loss computed before an optimizer step changed its model', False, ('backward(',)),
        Entry('GL106', 'second-backward', 'A second `backward()` through a graph the first one freed (no `retain_graph=True`)', True, ('backward(',)),
        Entry('GL107', 'autograd-variable', '`torch.autograd.Variable(...)`: deprecated since PyTorch 0.4, use the tensor itself', True, (('Variable', 'autograd'),)),
        Entry('GL108', 'data-attribute', '`.data` used to update parameters or gradients, or to read a loss', True, (('.data', 'backward('), ('.data', 'requires_grad'), ('.data', 'Parameter'), ('.data', 'Variable'), ('.data', 'parameters('), ('.data', 'param_groups'), ('.data', '.grad'))),
        Entry('GL109', 'leaf-updated-in-place', 'An in-place update of a leaf tensor that requires grad, outside `torch.no_grad()`', True, ((('.backward', '.manual_backward'), ('requires_grad', 'Parameter', 'Variable', 'parameters(', 'param_groups')),)),
        Entry('GL110', 'moved-leaf', 'A tensor made with `requires_grad=True` is moved or cast, and its name holds the copy', True, ((('requires_grad=True', 'requires_grad_('), ('.to(', '.cuda(', '.cpu(', '.type(', '.double(', '.float(', '.half(', '.bfloat16('), ('torch.arange(', 'torch.empty(', 'torch.empty_like(', 'torch.eye(', 'torch.full(', 'torch.full_like(', 'torch.linspace(', 'torch.logspace(', 'torch.normal(', 'torch.ones(', 'torch.ones_like(', 'torch.rand(', 'torch.rand_like(', 'torch.randint(', 'torch.randn(', 'torch.randn_like(', 'torch.tensor(', 'torch.zeros(', 'torch.zeros_like(')),)),
        Entry('GL111', 'zero-missing-grad', '`x.grad.zero_()` before any backward has populated `x.grad`: AttributeError on None', True, ((('.backward', '.manual_backward'), ('grad.zero_(', 'grad.data.zero_(')),)),
        Entry('GL112', 'step-before-backward', 'The optimizer steps before the backward() of the same iteration', True, (('backward(', 'step('),)),
        Entry('GL113', 'training-in-eval-mode', '`model.eval()` reaches a training step with no `model.train()` between', True, (('backward(', ('eval(', 'train(')),)),
        Entry('GL114', 'evaluation-with-autograd', 'An evaluation loop over a trained model runs with autograd on: graphs for nothing', True, ('backward(',)),
        Entry('GL115', 'unscaled-accumulation', 'Gradient accumulated over k micro-batches with the loss not divided by k', True, (('backward(', 'zero_grad('),)),
        Entry('GL800', 'unused-noqa', 'A `# noqa` comment lists a gradlint code that suppresses nothing on its line', False, (('noqa', 'GL'),)),
        Entry('GL900', 'syntax-error', 'The file is not valid Python; it was not analysed', False, ('backward(',)),
        Entry('GL901', 'unreadable-file', 'The file cannot be read or decoded; it was not analysed', False, ('backward(',)),
        Entry('GL902', 'analysis-limit', 'The file is too large or took too long to analyse; it was not analysed', False, ('backward(',)),
        Entry('GL999', 'internal-error', 'gradlint failed on this file; please report it', False, ('backward(',)),
    )
}
# fmt: on
# --- end of the written part --------------------------------------------------------------------

BEGIN = "# --- written by"
END = "# --- end of the written part"


def written() -> str:
    """This module's text with the entries of the rule modules as they are now."""
    from pathlib import Path

    from gradlint.rules.registry import RULES

    text = Path(__file__).read_text(encoding="utf-8")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    entries = "".join(
        f"        Entry({r.code!r}, {r.name!r}, {r.summary!r}, {r.fixable!r}, {r.triggers!r}),\n"
        for r in RULES.values()
    )
    marker = rest.split("\n", 1)[0]
    body = (
        "# fmt: off\n"
        "CATALOGUE: dict[str, Entry] = {\n    entry.code: entry\n    for entry in (\n"
        f"{entries}    )\n}}\n# fmt: on\n"
    )
    return f"{head}{BEGIN}{marker}\n{body}{END}{tail}"


if __name__ == "__main__":
    from pathlib import Path

    Path(__file__).write_text(written(), encoding="utf-8")
