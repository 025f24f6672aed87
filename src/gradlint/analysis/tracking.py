"""What a rule that follows paths declares, and what the path analysis tells it.

A `Tracker` is one rule's analysis over the path exploration of `analysis/flow.py`: a small
hashable value per path (`start()`), changed by the events met along it (`event`, `assign`,
`opaque`) and at the end of each pass of a loop (`leave_pass`). When a bad order of events is
reachable on a path the tracker calls `At.report`; the flow records the report once, replays
it when it reuses a remembered body, and drops it with a scope it gives up on. After the run,
`finish` turns the reports into the rule's violations (and may filter them on facts only the
whole run knows, such as every optimizer a clip was seen before).

Every tracker gets the same machinery for free: paths through `if`/`match`/`try`/`finally`,
`break`/`continue`/`return`, loop iterations to a fixpoint, conditions remembered within an
iteration, same-module functions and methods followed with their parameters bound, loops over
lists of optimizers taken as acting on all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

import libcst as cst

from gradlint.analysis.accumulation import Kept
from gradlint.analysis.events import Backward, Names, Reset, Site, Update

if TYPE_CHECKING:
    from gradlint.rules.base import Violation

# A branch taken on a path: (the condition's text, the value it took).
Guard = tuple[str, bool]


@dataclass(frozen=True)
class Clip:
    """`torch.nn.utils.clip_grad_norm_(params, max_norm)` or `clip_grad_value_`."""

    site: Site
    models: tuple[str, ...] | None  # the models whose parameters it clips, None: not known
    call: cst.Call = field(compare=False, hash=False, repr=False)


@dataclass(frozen=True)
class Unscale:
    """`scaler.unscale_(optimizer)`."""

    site: Site
    scaler: str
    optimizer: str | None


@dataclass(frozen=True)
class ScaledBackward:
    """`scaler.scale(loss).backward()`: every `.grad` it adds is multiplied by the scale.
    Met right after the `Backward` event of the same call."""

    site: Site
    scaler: str


@dataclass(frozen=True)
class SchedulerStep:
    """`scheduler.step()` of a learning-rate scheduler, with the optimizer it was built on."""

    site: Site
    scheduler: str
    optimizer: str | None  # None: a scheduler known by its name only


@dataclass(frozen=True)
class ModeSwitch:
    """`model.train()` (training True), `model.eval()` or `model.train(False)` (False), or
    `model.train(flag)` with a flag not known here (None)."""

    site: Site
    model: str
    training: bool | None


@dataclass(frozen=True)
class InPlace:
    """A write into a tensor in place: `w -= lr * w.grad`, `w.sub_(...)`, `w[0] = 1.0`."""

    site: Site
    tensor: str  # as written (a loop variable stays itself), without a trailing `.data`
    through_data: bool  # `w.data.sub_(...)`: a write autograd does not see
    reads_grad: bool  # the statement reads `w.grad`: a hand-written optimizer step


@dataclass(frozen=True)
class Accumulate:
    """A value kept beyond its statement: `total += loss`, `total = total + loss`,
    `losses.append(loss)`, `meter.update(loss)` of a keeping method."""

    site: Site
    target: str  # resolved: what keeps the value
    kept: Kept = field(compare=False, hash=False, repr=False)  # as written


@dataclass(frozen=True)
class Opaque:
    """A call gradlint cannot see into, with the objects it receives (resolved names)."""

    received: frozenset[str]


PathEvent = Union[
    Backward,
    Update,
    Reset,
    Clip,
    Unscale,
    ScaledBackward,
    SchedulerStep,
    ModeSwitch,
    InPlace,
    Accumulate,
    Opaque,
]


@dataclass(frozen=True)
class Report:
    """What a tracker found on a path, kept once per (code, key)."""

    code: str
    key: tuple[Hashable, ...]
    data: Any = field(compare=False, hash=False)
    order: tuple[int, ...] = ()  # of several reports with one key, the smallest is kept


@dataclass(frozen=True)
class At:
    """Where on the path an event happens."""

    loops: tuple[int, ...]  # ids of the loops around it, outermost first
    guards: tuple[Guard, ...]  # the branches taken to get here, outermost first
    grad_off: bool  # under `torch.no_grad()` / `inference_mode()` / `set_grad_enabled(False)`
    names: Names
    scope: int
    report: Callable[[Report], None] = field(compare=False, hash=False, repr=False)


def together(first: tuple[Guard, ...], second: tuple[Guard, ...]) -> bool:
    """Two events surely run on the same pass when one's branches include the other's: the
    analysis claims an order only for events that do not depend on unrelated conditions."""
    short, long = (first, second) if len(first) <= len(second) else (second, first)
    return long[: len(short)] == short


class Tracker:
    """One rule's analysis along paths; override what the rule reads."""

    code = ""
    # values joined wherever paths meet, not only when there are too many paths: for values that
    # differ on most branches (the graphs of names) and whose join loses little
    joins_where_paths_meet = False

    def start(self) -> Hashable:
        return None

    def event(self, value: Any, event: PathEvent, at: At) -> Any:
        return value

    def assign(self, value: Any, statement: cst.CSTNode, targets: set[str], at: At) -> Any:
        """`statement` (an assignment, or a `for`/`with` binding) just bound `targets`."""
        return value

    def leave_pass(self, value: Any, loop: int) -> Any:
        """A pass of `loop` ended (its back edge, or the loop's exit); also called with a
        function's id between two calls of a function a framework calls once per batch."""
        return value

    def forget(self, value: Any, names: set[str]) -> Any:
        """A function returned: its local `names` are gone."""
        return value

    def join(self, values: list[Any]) -> Any:
        """One value for paths merged to bound the analysis' cost: what it lets the rule report
        must hold on every one of them (an intersection of what each knows)."""
        return self.start()

    def finish(self, reports: list[Report]) -> Iterable[Violation]:
        return ()


def met(at: At, code: str, node: object, target: str) -> None:
    """Note that the event at `node` (a clip, a scheduler step) met `target` (an optimizer it
    may serve): when which one it serves is not known, it is judged only if it met one."""
    at.report(Report(code, (MET, id(node), target), None))


def unambiguous(reports: list[Report]) -> list[Report]:
    """The reports (keyed by their event's node id) of events that met at most one target."""
    targets: dict[object, set[object]] = {}
    for report in reports:
        if report.key[0] == MET:
            targets.setdefault(report.key[1], set()).add(report.key[2])
    return [r for r in reports if r.key[0] != MET and len(targets.get(r.key[0], ())) <= 1]


MET = "met"


def common(sets: Iterable[frozenset[Any]]) -> frozenset[Any]:
    """What every one of `sets` holds."""
    return frozenset.intersection(*sets)
