"""Follow gradient events along every path through a function, across loop iterations.

A small abstract interpreter over the CST: each program point holds a set of `State`s (one
per class of paths); `if` and `match` split and join, loops iterate to a fixpoint over their
back edge, `break`/`continue`/`return` leave through `Outcome`, `finally` runs on every exit.
Conditions already branched on in the current iteration are remembered, so accumulation
(`if (i + 1) % k == 0:` twice) is followed only along consistent paths. Calls to functions of
the same module are followed into their bodies; other calls that receive an optimizer or a
model make that owner unknown on the path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from functools import partial
from typing import cast

import libcst as cst

from gradlint.analysis import state as gs
from gradlint.analysis.calls import (
    HARMLESS_METHODS,
    HARMLESS_ROOTS,
    bind_arguments,
    bind_groups,
    calls_in,
    constructs,
    handed_over,
    literal_arguments,
    local_names,
    parameter_names,
)
from gradlint.analysis.conditions import (
    SYNC_GRADIENTS,
    condition_key,
    condition_names,
    counter_from,
    empty_key,
    first_iteration_test,
    grad_guard,
    is_stable,
    last_pass_info,
    last_pass_tests,
    loop_counter,
    none_test,
    runs_forever,
    set_on_every_pass,
)
from gradlint.analysis.counters import (
    Residue,
    ResidueTest,
    advanced_counter,
    increment_of,
    per_call_counters,
    residue_test,
)
from gradlint.analysis.events import (
    Backward,
    Collective,
    Event,
    GroupKey,
    Names,
    Recognizer,
    Reset,
    Update,
    collective,
)
from gradlint.analysis.index import MODULE, OwnerKind, index_module
from gradlint.analysis.knowledge import Knowledge
from gradlint.analysis.state import State, evolve
from gradlint.analysis.syntax import (
    Listing,
    assigned_targets,
    body_of,
    bound_here,
    code_of,
    dotted,
    ends_by_leaving,
    last_name,
    listing,
    walk,
)
from gradlint.analysis.torch_api import callers_by_name, decorated_no_grad, disables_grad
from gradlint.analysis.tracking import At, Guard, Opaque, PathEvent, Report, Tracker

MAX_STATES = 4096
WIDEN_AT = 64  # states at one point before paths that differ only in fresh sites are merged
MAX_LOOP_PASSES = 12
MAX_INLINE_DEPTH = 3


class Cover(Enum):
    """Whether a reset clears an owner's gradient."""

    SURELY = "surely"
    MAYBE = "maybe"  # it may: nothing that needs the gradient kept or cleared can be claimed
    NOT = "not"


class TooComplex(Exception):
    """The analysis of one scope gave up; that scope yields no findings (precision first)."""


@dataclass
class Outcome:
    normal: set[State] = field(default_factory=set)
    breaks: set[State] = field(default_factory=set)
    continues: set[State] = field(default_factory=set)
    returns: set[State] = field(default_factory=set)

    def copy(self) -> Outcome:
        return Outcome(set(self.normal), set(self.breaks), set(self.continues), set(self.returns))

    def merge(self, other: Outcome) -> None:
        self.breaks |= other.breaks
        self.continues |= other.continues
        self.returns |= other.returns


@dataclass(frozen=True)
class Loop:
    node_id: int
    counter: str | None  # `i` of `for i in range(n)` / `enumerate(x)`: 0 on the first pass
    last_tests: frozenset[str] = frozenset()  # tests true on the last pass only
    start: int = 0  # the counter's value on the first pass
    # a counter the body itself advances once per pass (`global_step += 1`), from a value
    # not known here: its residues move at the increment, not at the back edge
    advanced: str | None = None
    # names the body sets (not to None) on every pass: `x is not None` after the first pass
    set_every_pass: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Frame:
    """What the interpreter knows of the code around a statement: how names are bound, the
    loops and branches it is in, the functions being followed (not the state of a path)."""

    names: Names = field(default_factory=Names)
    cls: str | None = None  # class whose methods `self.m()` resolves to
    local_defs: tuple[dict[str, cst.FunctionDef], ...] = ()
    loops: tuple[Loop, ...] = ()
    leaving: bool = False  # in a branch that ends by leaving the iteration (continue, break, ...)
    inlining: tuple[int, ...] = ()  # ids of functions being followed, for recursion
    scope: int = MODULE  # the function whose body is being interpreted
    # counters a framework advances once per call of this function (`engine.state.iteration`)
    per_call: frozenset[str] = frozenset()
    guards: tuple[Guard, ...] = ()  # branches taken to get here (for the trackers)
    grad_off: bool = False  # under no_grad / inference_mode / set_grad_enabled(False)
    outer_loops: tuple[int, ...] = ()  # ids of the callers' loops around this call


class Flow:
    """Runs the path analysis over one module; `findings` collects what it proves."""

    def __init__(
        self,
        module: cst.Module,
        knowledge: Knowledge,
        recognizer: Recognizer,
        listed: Listing | None = None,
        trackers: tuple[Tracker, ...] = (),
        path_events: Callable[[cst.CSTNode, Names], tuple[PathEvent, ...]] | None = None,
        callers: Mapping[str, Sequence[cst.Call]] | None = None,
    ):
        self.module = module
        # the rules that follow paths on this exploration, and what recognises their events
        self.trackers = trackers
        self.path_events = path_events
        self.reports: list[Report] = []
        self.eager = any(t.joins_where_paths_meet for t in trackers)
        self.knowledge = knowledge
        self.recognizer = recognizer
        self.listed = listed if listed is not None else listing(module)
        self.index = index_module(module, knowledge, recognizer, self.listed)
        # the calls of each function (the rule context's, when it has them already)
        if callers is None:
            callers = callers_by_name(self.listed.of_type(cst.Call))
        self._callers = callers
        self.findings: dict[tuple[object, ...], gs.Finding | Report] = {}
        self.scopes_analysed = 0
        # syntax facts asked again on every pass over a loop, kept per node
        self._calls_cache: dict[int, list[cst.Call]] = {}
        self._assigned_cache: dict[int, set[str]] = {}
        self._locals_cache: dict[int, set[str]] = {}  # the plain names each function binds
        # what following a loop or a called body from a set of states gives, and the findings
        # proved on the way (see `_remembered`); the findings proved by the bodies being
        # followed now, innermost last
        self._summaries: dict[
            tuple[object, frozenset[State]], tuple[Outcome, tuple[gs.Finding | Report, ...]]
        ] = {}
        self._proved: list[list[gs.Finding | Report]] = []
        self.scopes_abandoned = 0
        # ids of the functions whose body was followed from a call (in a scope not given up on)
        self._followed: set[int] = set()
        # (scope id, why) of each scope given up on: reported (GL902), never silently passed
        self.abandoned: list[tuple[int, str]] = []

    # entry points ------------------------------------------------------------------------------
    def run(self) -> list[gs.Finding]:
        """Each scope that reaches a backward: first the module and the functions nothing in
        it calls (and those a framework calls once per batch), following the calls they make;
        then any function none of those followed a call into (called only from code that
        reaches no backward, past the depth of calls followed, or from a scope given up on):
        a function followed from its callers is analysed where it runs, not again alone."""
        if MODULE in self.index.with_backward:
            self._scope(self.module.body, Frame())
        functions = [
            cast(cst.FunctionDef, node)
            for node in self.listed.of_type(cst.FunctionDef)
            if id(node) in self.index.with_backward
        ]
        called = self.index.called - self.index.repeated
        for node in [f for f in functions if id(f) not in called]:
            self._entry(node)
        for node in [f for f in functions if id(f) in called]:
            if id(node) not in self._followed:
                self._entry(node)
        found = [f for f in self.findings.values() if not isinstance(f, Report)]
        self.reports = [f for f in self.findings.values() if isinstance(f, Report)]
        return sorted(found, key=_finding_key)

    def _entry(self, node: cst.FunctionDef) -> None:
        """Analyse a function's body on its own, as a caller we cannot see would run it."""
        ctx = Frame(
            cls=self.index.enclosing_class.get(id(node)),
            inlining=(id(node),),
            scope=id(node),
            # a function that calls backward runs with gradient recording on (the backward of
            # a loss it computes raises otherwise), unless decorated
            grad_off=bool(self.trackers) and decorated_no_grad(node),
        )
        # a function called once per batch runs again after it returns
        again = id(node) in self.index.repeated
        if again:
            ctx = replace(ctx, per_call=per_call_counters(node))
        self._scope(body_of(node.body), ctx, again=again, known=self._called_with(node))

    def _scope(
        self,
        body: Iterable[cst.BaseStatement | cst.BaseSmallStatement],
        ctx: Frame,
        again: bool = False,
        known: frozenset[tuple[str, bool]] = frozenset(),
    ) -> None:
        start = State(
            owners=tuple(sorted((k, gs.EMPTY) for k in self.index.owners)),
            tracked=tuple(t.start() for t in self.trackers),
            assumed=known,
        )
        saved = dict(self.findings)
        followed = set(self._followed)
        try:
            states = {start}
            for _ in range(MAX_LOOP_PASSES if again else 1):
                out = self._block(list(body), states, replace(ctx, local_defs=({},)))
                # the next call starts where this one ended, by its end or by a return, with
                # the framework's counters one further
                ended = self._leave_pass(out.normal | out.returns, ctx.scope)
                for counter in ctx.per_call:
                    ended = {_advance(s, counter) for s in ended}
                following = self._bounded(states | ended)
                if following == states:
                    break
                states = following
            self.scopes_analysed += 1
        except (TooComplex, RecursionError) as error:
            self.findings = saved
            self._followed = followed  # what the abandoned scope followed is not analysed
            self.scopes_abandoned += 1
            why = "too many paths" if isinstance(error, TooComplex) else "nesting too deep"
            self.abandoned.append((ctx.scope, why))

    def _called_with(self, function: cst.FunctionDef) -> frozenset[tuple[str, bool]]:
        """The flags every call of `function` in the module gives it (`optimizer=None` left to
        its default by every caller): the paths they rule out are never taken from here."""
        calls = self._callers.get(function.name.value)
        if not calls:
            return frozenset()
        return frozenset.intersection(*(literal_arguments(function, call) for call in calls))

    # statements --------------------------------------------------------------------------------
    def _block(self, stmts: list, states: set[State], ctx: Frame) -> Outcome:
        out = Outcome(normal=states)
        for stmt in stmts:
            if not out.normal:
                break
            result = self._statement(stmt, out.normal, ctx)
            out.merge(result)
            grew = len(result.normal) > len(out.normal)
            out.normal = self._bounded(result.normal) if grew else result.normal
        return out

    def _statement(self, stmt: cst.CSTNode, states: set[State], ctx: Frame) -> Outcome:
        if isinstance(stmt, cst.SimpleStatementLine):
            return self._block(list(stmt.body), states, ctx)
        if isinstance(stmt, cst.Expr):
            return Outcome(normal=self._calls(stmt.value, states, ctx))
        if isinstance(stmt, (cst.Assign, cst.AugAssign, cst.AnnAssign)):
            return Outcome(normal=self._assignment(stmt, states, ctx))
        if isinstance(stmt, cst.Del):
            return Outcome(
                normal=self._events(self.recognizer.assignment(stmt, ctx.names), states, ctx)
            )
        if isinstance(stmt, cst.Return):
            after = self._calls(stmt.value, states, ctx) if stmt.value else states
            return Outcome(returns=after)
        if isinstance(stmt, cst.Break):
            return Outcome(breaks=set(states))
        if isinstance(stmt, cst.Continue):
            return Outcome(continues=set(states))
        if isinstance(stmt, cst.Raise):
            return Outcome()
        if isinstance(stmt, cst.If):
            return self._if(stmt, states, ctx)
        if isinstance(stmt, (cst.For, cst.While)):
            return self._remembered(
                (id(stmt), _context_key(ctx)),
                frozenset(states),
                lambda: self._loop(stmt, states, ctx),
            )
        if isinstance(stmt, (cst.Try, cst.TryStar)):
            return self._try(stmt, states, ctx)
        if isinstance(stmt, cst.With):
            return self._with(stmt, states, ctx)
        if isinstance(stmt, cst.Match):
            return self._match(stmt, states, ctx)
        if isinstance(stmt, cst.FunctionDef):
            ctx.local_defs[-1][stmt.name.value] = stmt
            return Outcome(normal=states)
        if isinstance(stmt, cst.ClassDef):
            return Outcome(normal=states)
        # pass, import, global, assert, ...: only their calls matter
        return Outcome(normal=self._calls(stmt, states, ctx))

    def _assignment(self, stmt: cst.CSTNode, states: set[State], ctx: Frame) -> set[State]:
        counter = increment_of(stmt)
        if counter is not None and any(loop.advanced == counter for loop in ctx.loops):
            return {_advance(s, counter) for s in states}
        value = getattr(stmt, "value", None)
        if value is not None:
            states = self._calls(value, states, ctx)
        if isinstance(stmt, (cst.Assign, cst.AugAssign)):
            states = self._events(self.recognizer.assignment(stmt, ctx.names), states, ctx)
            if self.path_events is not None:
                for known in self.path_events(stmt, ctx.names):  # in place, a running sum
                    states = self._tell(states, ctx, known)
        targets = {ctx.names.resolve(t) for t in self._assigned(stmt)}
        states = {_forget(s, targets) for s in states}
        if isinstance(stmt, cst.Assign):
            states = {self._rebind(s, targets, stmt.value) for s in states}
            if _empty_list(stmt.value) and targets & self.index.emptiness_tested:
                states = _known_empty(states, targets & self.index.emptiness_tested, True)
        return self._bind(stmt, targets, states, ctx)

    # trackers ----------------------------------------------------------------------------------
    def _at(self, ctx: Frame) -> At:
        loops = (*ctx.outer_loops, *(loop.node_id for loop in ctx.loops))
        return At(loops, ctx.guards, ctx.grad_off, ctx.names, ctx.scope, self._record)

    def _tell(self, states: set[State], ctx: Frame, event: PathEvent) -> set[State]:
        if not self.trackers:
            return states
        at = self._at(ctx)
        return self._each(states, lambda t, v: t.event(v, event, at))

    def _bind(
        self, stmt: cst.CSTNode, targets: set[str], states: set[State], ctx: Frame
    ) -> set[State]:
        if not self.trackers or not targets:
            return states
        at = self._at(ctx)
        return self._each(states, lambda t, v: t.assign(v, stmt, targets, at))

    def _each(self, states: set[State], change: Callable[[Tracker, object], object]) -> set[State]:
        """Every state with each tracker's value changed; states often share their trackers'
        values (they differ in gradient facts), so each distinct value is changed once."""
        known: dict[tuple[object, ...], tuple[object, ...]] = {}
        out = set()
        for s in states:
            values = known.get(s.tracked)
            if values is None:
                values = known[s.tracked] = tuple(
                    change(t, v) for t, v in zip(self.trackers, s.tracked)
                )
            out.add(s if values == s.tracked else evolve(s, tracked=values))
        return out

    def _bounded(self, states: set[State]) -> set[State]:
        if len(states) > WIDEN_AT:
            states = gs.widen(states)
            if len(states) > WIDEN_AT and self.trackers:
                states = gs.widen(states, self._join)
        if len(states) > MAX_STATES:
            raise TooComplex
        return states

    def _join(self, values: list[tuple[object, ...]]) -> tuple[object, ...]:
        return tuple(
            tracker.join([v[i] for v in values]) for i, tracker in enumerate(self.trackers)
        )

    def _met(self, states: set[State]) -> set[State]:
        """Where paths meet (after an `if`): the trackers that join there merge the states
        that differ only in their values."""
        if not self.eager:
            return states
        joining = [t.joins_where_paths_meet for t in self.trackers]
        groups: dict[tuple[object, ...], list[State]] = {}
        for s in states:
            kept = tuple(None if j else v for j, v in zip(joining, s.tracked))
            shape = (s.owners, s.background, s.assumed, s.first, s.residues, s.last_pass, kept)
            groups.setdefault(shape, []).append(s)
        if len(groups) == len(states):
            return states
        merged = set()
        for members in groups.values():
            if len(members) == 1:
                merged.add(members[0])
                continue
            values = tuple(
                tracker.join([m.tracked[i] for m in members]) if j else members[0].tracked[i]
                for i, (tracker, j) in enumerate(zip(self.trackers, joining))
            )
            merged.add(evolve(members[0], tracked=values))
        return merged

    def _leave_pass(self, states: set[State], loop: int) -> set[State]:
        if not self.trackers:
            return states
        return self._each(states, lambda t, v: t.leave_pass(v, loop))

    def _forget_locals(self, states: set[State], names: set[str]) -> set[State]:
        if not self.trackers:
            return states
        return self._each(states, lambda t, v: t.forget(v, names))

    def _assigned(self, node: cst.CSTNode) -> set[str]:
        found = self._assigned_cache.get(id(node))
        if found is None:
            found = self._assigned_cache[id(node)] = assigned_targets(node)
        return found

    def _rebind(self, state: State, targets: set[str], value: cst.BaseExpression) -> State:
        """A name bound to a new tensor (or a model built anew) carries no gradient."""
        changes: dict[str, gs.Facts] = {}
        new_object = _constructed(value)
        for key, kind in self.index.owners.items():
            if kind == OwnerKind.TENSOR and key in targets:
                changes[key] = gs.EMPTY
            elif kind == OwnerKind.OPTIMIZER and new_object:
                link = self.knowledge.link(key)
                if link is not None and link.models and link.models <= targets:
                    changes[key] = gs.EMPTY
        return state.with_facts(changes) if changes else state

    def _if(self, stmt: cst.If, states: set[State], ctx: Frame) -> Outcome:
        states = self._calls(stmt.test, states, ctx)
        true_states, false_states = self._branch(
            stmt.test, states, ctx, remember=self.index.steers_gradients(stmt)
        )
        on_true, on_false = _guarded(ctx, stmt.test) if self.trackers else (ctx, ctx)
        out = self._block(body_of(stmt.body), true_states, _leaving(on_true, stmt.body))
        if isinstance(stmt.orelse, cst.If):
            other = self._if(stmt.orelse, false_states, on_false)
        elif isinstance(stmt.orelse, cst.Else):
            other = self._block(
                body_of(stmt.orelse.body), false_states, _leaving(on_false, stmt.orelse.body)
            )
        else:
            other = Outcome(normal=false_states)
        out.merge(other)
        out.normal = self._met(out.normal | other.normal)
        return out

    def _with(self, stmt: cst.With, states: set[State], ctx: Frame) -> Outcome:
        for item in stmt.items:
            states = self._calls(item.item, states, ctx)
            if item.asname is not None:
                targets = {ctx.names.resolve(t) for t in assigned_targets(item.asname)}
                states = {_forget(s, targets) for s in states}
                states = self._bind(item, targets, states, ctx)
            call = item.item
            if isinstance(call, cst.Call) and last_name(call.func) == "accumulate":
                states = {variant for s in states for variant in _sync_or_not(s)}
        if self.trackers and not ctx.grad_off and disables_grad(stmt):
            ctx = replace(ctx, grad_off=True)
        return self._block(body_of(stmt.body), states, ctx)

    def _match(self, stmt: cst.Match, states: set[State], ctx: Frame) -> Outcome:
        states = self._calls(stmt.subject, states, ctx)
        out = Outcome()
        exhaustive = False
        for case in stmt.cases:
            result = self._block(body_of(case.body), states, _leaving(ctx, case.body))
            out.merge(result)
            out.normal |= result.normal
            if (
                isinstance(case.pattern, cst.MatchAs)
                and case.pattern.pattern is None
                and case.guard is None
            ):
                exhaustive = True
        if not exhaustive:
            out.normal |= states
        return out

    def _try(self, stmt: cst.Try | cst.TryStar, states: set[State], ctx: Frame) -> Outcome:
        body = self._block(body_of(stmt.body), states, ctx)
        out = Outcome()
        out.merge(body)
        # An exception may leave the body early; we follow the two ends only (at entry, at the
        # end), never a path that stops between two events of one training step.
        handler_entry = states | body.normal
        handlers = Outcome()
        for handler in stmt.handlers:
            result = self._block(body_of(handler.body), handler_entry, _leaving(ctx, handler.body))
            handlers.merge(result)
            handlers.normal |= result.normal
        out.merge(handlers)
        normal = body.normal
        if stmt.orelse is not None:
            other = self._block(body_of(stmt.orelse.body), normal, ctx)
            out.merge(other)
            normal = other.normal
        out.normal = normal | handlers.normal
        if stmt.finalbody is None:
            return out
        final = body_of(stmt.finalbody.body)
        result = Outcome()
        for kind in ("normal", "breaks", "continues", "returns"):
            entering = getattr(out, kind)
            if not entering:
                continue
            after = self._block(final, entering, ctx)
            result.merge(after)
            getattr(result, kind).update(after.normal)
        return result

    def _loop(self, stmt: cst.For | cst.While, states: set[State], ctx: Frame) -> Outcome:
        if isinstance(stmt, cst.For):
            states = self._calls(stmt.iter, states, ctx)
            together = collective(stmt, self.knowledge, ctx.names)
            if together is not None:
                return self._collective(stmt, together, states, ctx)
        loop_id = id(stmt)
        assigned = {ctx.names.resolve(t) for t in self._assigned(stmt)}
        loop = Loop(loop_id, None)
        if isinstance(stmt, cst.For):
            counter = loop_counter(stmt)
            started = counter_from(stmt)  # `enumerate(xs, 1)`: residues only, no first-pass tests
            if counter is not None and counter not in assigned_targets(stmt.body):
                loop = Loop(loop_id, counter, last_pass_tests(stmt))
            elif started is not None and started[0] not in assigned_targets(stmt.body):
                loop = Loop(loop_id, started[0], start=started[1])
        loop = replace(
            loop, advanced=advanced_counter(stmt.body), set_every_pass=set_on_every_pass(stmt.body)
        )
        # a counter that a loop inside this one advances keeps what is known of it across
        # this loop's passes too (`global_step += 1` in the batch loop of an epoch loop)
        assigned -= {
            advanced_counter(inner.body)
            for inner in walk(stmt.body)
            if isinstance(inner, (cst.For, cst.While))
        } - {None}
        body_ctx = replace(ctx, loops=(*ctx.loops, loop), leaving=False)
        entry = {evolve(_forget(s, assigned), first=s.first | {loop_id}) for s in states}
        # Each pass follows only the states not followed before (every state's path is its
        # own: following a set is following each of its states), so a loop inside loops costs
        # what its distinct states cost, not that times the passes of every enclosing loop.
        head = set(entry)
        todo = head
        body = Outcome()
        bound = (
            {ctx.names.resolve(t) for t in bound_here(stmt)} if isinstance(stmt, cst.For) else set()
        )
        for _ in range(MAX_LOOP_PASSES):
            ready = todo
            if isinstance(stmt, cst.While):
                ready = self._calls(stmt.test, todo, ctx)
            else:
                ready = self._bind(stmt, bound, ready, body_ctx)
            this_pass = self._block(body_of(stmt.body), ready, body_ctx)
            body.merge(this_pass)
            body.normal = self._bounded(body.normal | this_pass.normal)
            ends = body.normal | body.continues
            back = self._leave_pass(
                {
                    _next_iteration(s, assigned, loop)
                    for s in ends
                    if (loop_id, True) not in s.last_pass
                },
                loop_id,
            )
            new_head = self._bounded(entry | back)
            todo = new_head - head
            if not todo:
                break
            head |= todo
        # Without a fixpoint (merged paths can keep changing shape) the passes followed so far
        # still describe real paths: what they show holds, some later pass may go unseen.
        # the loop ends after a pass that may be its last (`i + 1 == len(xs)` not known false)
        exhausted = (
            set()
            if runs_forever(stmt)
            else entry
            | self._leave_pass(
                {
                    _next_iteration(s, assigned, loop)
                    for s in ends
                    if (loop_id, False) not in s.last_pass
                },
                loop_id,
            )
        )
        out = Outcome(returns=body.returns)
        if stmt.orelse is not None and exhausted:
            other = self._block(body_of(stmt.orelse.body), exhausted, ctx)
            out.merge(other)
            exhausted = other.normal
        left = exhausted | self._leave_pass(body.breaks, loop_id)
        out.normal = {evolve(s, first=s.first - {loop_id}) for s in left}
        return out

    def _collective(
        self, stmt: cst.For, together: Collective, states: set[State], ctx: Frame
    ) -> Outcome:
        """`for p in model.parameters(): p.grad = None` acts on all parameters at once, and
        `for opt in optimizers: opt.step()` on all optimizers: the body runs once for the whole
        collection, never zero times."""
        names = together.names(ctx.names)
        body = self._block(body_of(stmt.body), states, replace(ctx, names=names))
        return Outcome(normal=body.normal | body.continues | body.breaks, returns=body.returns)

    # conditions --------------------------------------------------------------------------------
    def _branch(
        self, test: cst.BaseExpression, states: set[State], ctx: Frame, remember: bool = True
    ) -> tuple[set[State], set[State]]:
        """Split states on a condition. Only conditions that `remember` (their branches touch
        gradients or leave the iteration) are recorded: the others would multiply the states
        with facts that nothing reads."""
        true_states: set[State] = set()
        false_states: set[State] = set()
        key, polarity = condition_key(test)
        # a condition tested once has nothing to be consistent with but its own next pass,
        # which a loop that rebinds its names forgets anyway
        stable = is_stable(test) and remember and key in self.index.repeated_conditions
        counting = self._residue_test(test, ctx) if remember else None
        for s in states:
            if counting is not None:
                true_side, false_side = _branch_on_residue(counting, s, ctx)
                true_states |= true_side
                false_states |= false_side
                continue
            value = self._evaluate(test, s, ctx)
            here, same, steady = key, polarity, stable
            if value is None and isinstance(test, cst.BooleanOperation):
                # `optimizer and do_zero_grad` with `do_zero_grad` known: it is `optimizer`
                rest = self._unknown_side(test, s, ctx)
                if rest is not None:
                    here, same = condition_key(rest)
                    steady = is_stable(rest) and remember
                    steady = steady and here in self.index.repeated_conditions
            if value is None and here is not None:
                if (here, same) in s.assumed:
                    value = True
                elif (here, not same) in s.assumed:
                    value = False
            if value is True:
                true_states.add(s)
            elif value is False:
                false_states.add(s)
            elif here is not None and steady:
                true_states.add(evolve(s, assumed=s.assumed | {(here, same)}))
                false_states.add(evolve(s, assumed=s.assumed | {(here, not same)}))
            else:
                true_states.add(s)
                false_states.add(s)
        for loop in ctx.loops:
            if loop.last_tests:
                on_true, on_false = last_pass_info(test, loop.last_tests)
                true_states = _mark_last_pass(true_states, loop, on_true)
                false_states = _mark_last_pass(false_states, loop, on_false)
        return true_states, false_states

    def _unknown_side(
        self, test: cst.BooleanOperation, s: State, ctx: Frame
    ) -> cst.BaseExpression | None:
        """The side of `a and b` (`a or b`) whose value decides, when the other is known to
        be True (False): the test is then that side."""
        neutral = isinstance(test.operator, cst.And)
        left = self._evaluate(test.left, s, ctx)
        right = self._evaluate(test.right, s, ctx)
        if left is neutral and right is None:
            return test.right
        if right is neutral and left is None:
            return test.left
        return None

    def _both(self, test: cst.BooleanOperation, s: State, ctx: Frame) -> bool | None:
        """`a and b`, `a or b` from what is known of each side."""
        left = self._evaluate(test.left, s, ctx)
        right = self._evaluate(test.right, s, ctx)
        if isinstance(test.operator, cst.And):
            if left is False or right is False:
                return False
            return True if left and right else None
        if left is True or right is True:
            return True
        return False if left is False and right is False else None

    def _residue_test(
        self, test: cst.BaseExpression, ctx: Frame
    ) -> tuple[ResidueTest, Loop] | None:
        found = residue_test(test)
        if found is None:
            return None
        for loop in reversed(ctx.loops):
            if found.counter in (loop.counter, loop.advanced):
                return found, loop
        if found.counter in ctx.per_call:
            return found, Loop(MODULE, None, advanced=found.counter)
        return None

    def _evaluate(self, test: cst.BaseExpression, s: State, ctx: Frame) -> bool | None:
        if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
            inner = self._evaluate(test.expression, s, ctx)
            return None if inner is None else not inner
        if isinstance(test, cst.Name) and test.value in ("True", "False"):
            return test.value == "True"
        if isinstance(test, cst.BooleanOperation):
            return self._both(test, s, ctx)
        if isinstance(test, cst.Name):
            if (test.value, True) in s.assumed:
                return True
            if (test.value, False) in s.assumed:
                return False
        guard = grad_guard(test)
        if guard is not None:
            # `if p.grad is not None:` -- when the gradient is None there is nothing to reset
            # or read, so following only the branch that acts loses no finding.
            return guard
        none = none_test(test)
        if none is not None:
            for loop in reversed(ctx.loops):
                if none[0] in loop.set_every_pass and loop.node_id not in s.first:
                    return none[1]  # set on the pass before: `params is not None`
        counter, first_value = first_iteration_test(test)
        if counter is not None:
            for loop in reversed(ctx.loops):
                if loop.counter == counter and loop.start == 0:
                    return first_value if loop.node_id in s.first else not first_value
        return None

    # calls and events --------------------------------------------------------------------------
    def _calls(self, node: cst.CSTNode, states: set[State], ctx: Frame) -> set[State]:
        calls = self._calls_cache.get(id(node))
        if calls is None:
            calls = self._calls_cache[id(node)] = calls_in(node)
        for call in calls:
            if not states:
                break
            if self.index.emptiness_tested:
                appended = _appended_to(call)
                if appended is not None and appended in self.index.emptiness_tested:
                    states = _known_empty(states, {appended}, False)
                    continue
                touched = _touched(call) & self.index.emptiness_tested
                if touched:  # `xs.clear()`, `collect(xs)`: what is known of `len(xs)` goes
                    states = {_forget(s, touched) for s in states}
            event = self.recognizer.call(call, ctx.names)
            if isinstance(event, Backward):
                # `self.backward(loss)` of a trainer class that defines it: its body says
                # what the backward is (`self.scaler.scale(loss).backward()`)
                callee = self._resolve(call, ctx)
                if callee is not None and id(callee) in self.index.with_backward:
                    states = self._inline(callee, call, states, ctx)
                    continue
            extra = self.path_events(call, ctx.names) if self.path_events is not None else ()
            if extra:
                if event is not None:  # `scaler.scale(loss).backward()`: the backward first
                    states = self._events([event], states, ctx)
                for known in extra:  # a clip, an unscale_, a scheduler step, a kept value
                    states = self._tell(states, ctx, known)
                if event is not None:
                    continue
            if event is not None:
                if isinstance(event, Update) and event.closure is not None:
                    once = self._events([event], self._closure(event.closure, states, ctx), ctx)
                    if any(o in self.knowledge.reevaluating for o in event.owners):
                        # LBFGS calls the closure again after reading the gradient
                        again = self._events([event], self._closure(event.closure, once, ctx), ctx)
                        once = once | again
                    states = once
                    continue
                states = self._events([event], states, ctx)
                continue
            callee = self._resolve(call, ctx)
            if callee is not None:
                states = self._inline(callee, call, states, ctx)
            else:  # the trackers already know a call that made events of theirs
                states = self._opaque(call, states, ctx, tell=not extra)
        return states

    def _closure(self, closure: cst.BaseExpression, states: set[State], ctx: Frame) -> set[State]:
        """`opt.step(closure)`: the closure runs inside the step (LBFGS)."""
        if isinstance(closure, cst.Lambda):
            return self._calls(closure.body, states, ctx)
        name = dotted(closure)
        callee = None
        if name is not None:
            callee = self._lookup(name, ctx)
        if callee is None:
            return states
        return self._inline(callee, cst.Call(func=closure), states, ctx, via=closure)

    def _events(self, events: list[Event], states: set[State], ctx: Frame) -> set[State]:
        for event in events:
            if isinstance(event, Update):
                gated = all(self.knowledge.gated(owner) for owner in event.owners)
            else:
                gated = (
                    isinstance(event, Reset)
                    and bool(event.optimizer)
                    and (self.knowledge.gated(event.optimizer or ""))
                )
            # Accelerate: once accumulate() has set sync_gradients, a prepared optimizer's
            # step() and zero_grad() do nothing while it is False (model.zero_grad() still acts)
            skipped: set[State] = set()
            applied: set[State] = set()
            for s in states:
                if gated and (SYNC_GRADIENTS, False) in s.assumed:
                    skipped.add(s)
                else:
                    applied.add(self._apply(event, s, ctx))
            states = skipped | self._tell(applied, ctx, event)
        return states

    def _apply(self, event: Event, s: State, ctx: Frame) -> State:
        if isinstance(event, Backward):
            sources = self._loss_sources(event, ctx)
            changes = {
                key: gs.backward(facts, event.site, bool(self._sensitive(key) & sources))
                for key, facts in s.owners
            }
            s = evolve(s, background=s.background | {event.site})
            return s.with_facts(changes)
        if isinstance(event, Update):
            changes = {}
            for owner in event.owners:
                facts, findings = gs.update(s.facts(owner), owner, event.site)
                for finding in findings:
                    self._record(finding)
                changes[owner] = gs.EMPTY if event.zeroes_after else facts
            return s.with_facts(changes)
        changes = {}
        for owner, certain in self._reset_targets(event, s):
            if event.writes:
                changes[owner] = gs.write(s.facts(owner), event.site, certain)
            else:
                changes[owner] = gs.reset(s.facts(owner), event.site, certain, ctx.leaving)
        return s.with_facts(changes)

    def _loss_sources(self, event: Backward, ctx: Frame) -> set[str]:
        if event.loss is None:
            return set()
        names = self.index.sources(ctx.scope, event.loss)
        return {self.knowledge.model(ctx.names.resolve(n)) for n in names}

    def _reset_targets(self, event: Reset, s: State) -> list[tuple[str, bool]]:
        """Which owners a reset clears, and whether surely (`True`) or maybe (`False`)."""
        targets: list[tuple[str, bool]] = []
        for owner, _ in s.owners:
            kind = self.index.owners.get(owner, OwnerKind.TENSOR)
            cover = self._covers(event, owner, kind)
            if cover is not Cover.NOT:
                targets.append((owner, cover is Cover.SURELY))
        if event.optimizer and event.optimizer not in dict(s.owners):
            targets.append((event.optimizer, True))
        for tensor in event.tensors:
            if tensor not in dict(s.owners):
                targets.append((tensor, True))
        return targets

    def _covers(self, event: Reset, owner: str, kind: OwnerKind) -> Cover:
        if event.optimizer is not None:
            if owner == event.optimizer:
                return Cover.SURELY
            link = self.knowledge.link(event.optimizer)
            if link is None:
                return Cover.NOT
            if kind == OwnerKind.GROUP:
                surely = any(GroupKey((m,)) == owner for m in link.models)
            else:
                surely = owner in link.tensors
            return Cover.SURELY if surely else Cover.NOT
        if kind in (OwnerKind.OPTIMIZER, OwnerKind.ENGINE):
            link = self.knowledge.link(owner)
            if link is None:
                return Cover.MAYBE  # a model reset with no link known: it may reset this owner
            if event.models:
                relation = _relation(event.models, link.models)
                if relation is Cover.MAYBE and self._leaves_the_rest(event.models, link.models):
                    return Cover.NOT
                return relation
            if link.tensors and set(event.tensors) >= link.tensors:
                return Cover.SURELY
            return Cover.MAYBE if set(event.tensors) & link.tensors else Cover.NOT
        if isinstance(owner, GroupKey):
            if event.models:
                return _relation(event.models, frozenset(owner.models))
            return Cover.NOT
        if owner in event.tensors or any(owner.startswith(f"{m}.") for m in event.models):
            return Cover.SURELY
        return Cover.NOT

    # calls into the same module ----------------------------------------------------------------
    def _resolve(self, call: cst.Call, ctx: Frame) -> cst.FunctionDef | None:
        name = dotted(call.func)
        if name is None:
            return None
        return self._lookup(name, ctx)

    def _lookup(self, name: str, ctx: Frame) -> cst.FunctionDef | None:
        if name.startswith("self.") and name.count(".") == 1 and ctx.cls is not None:
            return self.index.classes.get(ctx.cls, {}).get(name[5:])
        if "." in name:
            return None
        for scope in reversed(ctx.local_defs):
            if name in scope:
                return scope[name]
        return self.index.functions.get(name)

    def _inline(
        self,
        callee: cst.FunctionDef,
        call: cst.Call,
        states: set[State],
        ctx: Frame,
        via: cst.CSTNode | None = None,
    ) -> set[State]:
        if (
            id(callee) in ctx.inlining
            or len(ctx.inlining) > MAX_INLINE_DEPTH
            or id(callee) not in self.index.with_events
        ):
            return self._opaque(call, states, ctx)
        self._followed.add(id(callee))
        aliases = bind_arguments(callee, call, ctx.names)
        if any(d.get(callee.name.value) is callee for d in ctx.local_defs):
            # a function defined where it is called (a closure) sees the names around it
            shadowed = set(parameter_names(callee))
            enclosing = {k: v for k, v in ctx.names.aliases.items() if k not in shadowed}
            aliases = {**enclosing, **aliases}
        is_method = id(callee) in self.index.enclosing_class
        path = (*ctx.names.via, self.recognizer.site(Names(), via or call).seq)
        # the callee's parameters shadow the caller's names; literal arguments are known values
        parameters = set(parameter_names(callee))
        flags = literal_arguments(callee, call)
        inner = Frame(
            names=Names(
                aliases=aliases,
                via=path,
                groups=bind_groups(callee, call, ctx.names, self.knowledge),
            ),
            cls=self.index.enclosing_class.get(id(callee)) if is_method else None,
            local_defs=(*ctx.local_defs, {}),
            leaving=ctx.leaving,
            inlining=(*ctx.inlining, id(callee)),
            scope=id(callee),
            guards=ctx.guards,
            grad_off=ctx.grad_off or (bool(self.trackers) and decorated_no_grad(callee)),
            outer_loops=(*ctx.outer_loops, *(loop.node_id for loop in ctx.loops)),
        )
        # what following the body depends on besides the states (see `_remembered`)
        key = (
            inner.guards,
            inner.grad_off,
            inner.outer_loops,
            id(callee),
            id(call),
            path,
            tuple(sorted(aliases.items())),
            tuple(tuple(sorted((n, id(f)) for n, f in d.items())) for d in ctx.local_defs),
            ctx.leaving,
            ctx.inlining,
        )
        # a parameter bound to anything but a caller's name (`update(log_prob.detach())`) is
        # the callee's own from the start: no tracker takes it for the caller's name spelled
        # alike (what they knew of that name goes at the end of the call anyway, below)
        states = self._forget_locals(states, parameters - aliases.keys())
        # callers' states differ mostly in what the callee cannot see: group them by it
        groups: dict[State, set[State]] = {}
        for s in states:
            entering = _forget(s, parameters)
            entering = evolve(entering, assumed=entering.assumed | flags)
            seen = _callee_view(entering, ctx)
            hidden = evolve(
                s,
                owners=(),
                background=frozenset(),
                assumed=frozenset(),
                residues=s.residues - seen.residues,
                tracked=(),
            )
            groups.setdefault(hidden, set()).add(seen)
        result: set[State] = set()
        local = parameters | self._locals(callee)
        # a parameter bound to the caller's object names it: the trackers know it by that name
        own = local - aliases.keys()
        for hidden, group in groups.items():
            out = self._remembered(
                key,
                frozenset(group),
                partial(self._block, body_of(callee.body), group, inner),
            )
            # the callee's own names end with the call: what was known of them goes too
            ended = self._forget_locals(
                {_drop_locals(o, local) for o in out.normal | out.returns}, own
            )
            result |= {_restored(o, hidden) for o in ended}
        return self._bounded(result)

    def _remembered(
        self, key: object, states: frozenset[State], follow: Callable[[], Outcome]
    ) -> Outcome:
        """What `follow()` gives from `states`, computed once per `key` and set of states.

        A body is met again and again with the same states: on every pass of each enclosing
        loop, and in each call of a function. What it gives, and the findings it proves on the
        way (recorded again when the answer is reused), depend on nothing else."""
        known = self._summaries.get((key, states))
        if known is not None:
            for finding in known[1]:
                self._record(finding)
            return known[0].copy()
        self._proved.append([])
        try:
            outcome = follow()
        finally:
            found = self._proved.pop()
        self._summaries[(key, states)] = (outcome.copy(), tuple(found))
        return outcome

    def _locals(self, callee: cst.FunctionDef) -> set[str]:
        """The plain names a function binds (not those it declares global or nonlocal)."""
        found = self._locals_cache.get(id(callee))
        if found is None:
            found = self._locals_cache[id(callee)] = local_names(callee)
        return found

    def _opaque(
        self, call: cst.Call, states: set[State], ctx: Frame, tell: bool = True
    ) -> set[State]:
        """A call we cannot see into may reset or update whatever owner it receives."""
        func = dotted(call.func) or ""
        root = func.split(".", 1)[0]
        tail = func.rsplit(".", 1)[-1]
        if "zero_grad" in tail:
            # another library's reset (`pyro.infer.util.zero_grads(params)`): it may reset any
            # gradient, so nothing that depends on a reset is claimed after it
            return {s.with_facts({owner: gs.UNKNOWN for owner, _ in s.owners}) for s in states}
        if (
            not call.args
            or root in HARMLESS_ROOTS
            or tail in HARMLESS_METHODS
            or tail[:1].isupper()
            or self.knowledge.is_forward(ctx.names.resolve(func))
        ):
            return states
        received: set[str] = set()
        for arg in call.args:
            received |= {ctx.names.resolve(n) for n in handed_over(arg.value)}
        if tell:
            states = self._tell(states, ctx, Opaque(frozenset(received)))
        # an object handed over hands over its attributes (`callback.on_backward(self, ...)`
        # may step or reset `self.optimizer`)
        holders = tuple(f"{r}." for r in received)
        result = set()
        for s in states:
            changes = {
                owner: gs.UNKNOWN
                for owner, _ in s.owners
                if self._sensitive(owner) & received or owner.startswith(holders)
            }
            result.add(s.with_facts(changes) if changes else s)
        return result

    def _leaves_the_rest(self, reset: Iterable[str], models: frozenset[str]) -> bool:
        """A reset of one sub-module (`model.fc.zero_grad()`) of the model an optimizer holds
        all of, when the module freezes nothing and resets no other sub-module of that model:
        the rest of the model keeps its gradient."""
        if self.index.freezes:
            return False
        for model in models:
            parts = {r for r in self.index.submodule_resets if r.startswith(f"{model}.")}
            if len(parts) == 1 and set(reset) <= parts:
                return True
        return False

    def _sensitive(self, owner: str) -> set[str]:
        names = {owner}
        kind = self.index.owners.get(owner)
        if kind == OwnerKind.OPTIMIZER:
            link = self.knowledge.link(owner)
            if link is not None:
                names |= link.models | link.tensors
        elif isinstance(owner, GroupKey):
            names |= set(owner.models)
        return names

    def _record(self, finding: gs.Finding | Report) -> None:
        for proved in self._proved:
            proved.append(finding)
        key = _finding_key(finding)
        order = _order(finding)
        known = self.findings.get(key)
        if known is None or order < _order(known):
            self.findings[key] = finding


def _finding_key(finding: gs.Finding | Report) -> tuple[object, ...]:
    if isinstance(finding, Report):
        return (finding.code, *finding.key)
    site = finding.backward if isinstance(finding, gs.StaleGradient) else finding.reset
    return (type(finding).__name__, site.line, site.col, finding.owner)


def _order(finding: gs.Finding | Report) -> tuple[object, ...]:
    """Which of several proofs of one finding to show: the shortest-looking path."""
    if isinstance(finding, Report):
        return finding.order
    if isinstance(finding, gs.StaleGradient):
        return (finding.previous_update.line, finding.update.line, finding.owner)
    # the backward nearest before the reset reads best
    distance = finding.reset.line - finding.backward.line
    return (finding.update.line, distance if distance >= 0 else 10**6 - distance, finding.owner)


# helpers ---------------------------------------------------------------------------------------


def _constructed(value: cst.BaseExpression) -> bool:
    """A new object (`Net()`, `copy.deepcopy(m)`), or a tuple of them (`a, b = X(), Y()`)."""
    if isinstance(value, cst.Call):
        return constructs(value)
    if isinstance(value, cst.Tuple) and value.elements:
        return all(_constructed(e.value) for e in value.elements)
    return False


def _context_key(ctx: Frame) -> tuple[object, ...]:
    """Everything of a context that following a statement depends on, hashable."""
    names = ctx.names
    return (
        tuple(sorted(names.aliases.items())),
        tuple(sorted(names.params.items())),
        tuple(sorted(names.groups.items(), key=lambda item: item[0])),
        names.via,
        ctx.cls,
        tuple(id(defs) for defs in ctx.local_defs),  # filled as the body runs: by identity
        ctx.loops,
        ctx.leaving,
        ctx.inlining,
        ctx.scope,
        ctx.per_call,
        ctx.guards,
        ctx.grad_off,
        ctx.outer_loops,
    )


def _callee_view(s: State, ctx: Frame) -> State:
    """What a called function can see of the caller's state: not which of the caller's loops
    are in their first or last pass, nor the caller's local counters (a function body names
    only its own loops; attributes and module-level counters it may test)."""
    residues = s.residues
    if ctx.scope != MODULE:
        residues = frozenset(r for r in residues if "." in r.counter)
    if not (s.first or s.last_pass) and residues == s.residues:
        return s
    return evolve(s, first=frozenset(), last_pass=frozenset(), residues=residues)


def _drop_locals(s: State, names: set[str]) -> State:
    """`s` without the conditions and counters that read any of `names` (a returning function's
    locals): they can never be tested again, and keeping them only multiplies the states."""
    s = _forget(s, names)
    kept = frozenset(
        r for r in s.residues if r.counter not in names and not (condition_names(r.modulus) & names)
    )
    return s if kept == s.residues else evolve(s, residues=kept)


def _restored(out: State, hidden: State) -> State:
    """A state the called function ended in, with what `_callee_view` hid from it restored."""
    if not (hidden.first or hidden.last_pass or hidden.residues):
        return out
    return evolve(
        out, first=hidden.first, last_pass=hidden.last_pass, residues=out.residues | hidden.residues
    )


def _empty_list(value: cst.BaseExpression) -> bool:
    return (isinstance(value, cst.List) and not value.elements) or (
        isinstance(value, cst.Call) and dotted(value.func) == "list" and not value.args
    )


def _appended_to(call: cst.Call) -> str | None:
    """`xs` of `xs.append(x)`."""
    func = call.func
    if isinstance(func, cst.Attribute) and func.attr.value == "append" and len(call.args) == 1:
        return dotted(func.value)
    return None


_READING_BUILTINS = frozenset(
    {"len", "print", "bool", "isinstance", "str", "repr", "sum", "min", "max", "any", "all"}
)


def _touched(call: cst.Call) -> set[str]:
    """The names a call may change: its receiver and the names it is given (builtins that only
    read, such as `len(xs)`, change nothing)."""
    if isinstance(call.func, cst.Name) and call.func.value in _READING_BUILTINS:
        return set()
    found = {dotted(arg.value) for arg in call.args}
    if isinstance(call.func, cst.Attribute):
        found.add(dotted(call.func.value))
    return {name for name in found if name is not None}


def _known_empty(states: set[State], names: set[str], empty: bool) -> set[State]:
    """What `xs = []` and `xs.append(x)` tell about `len(xs) == 0` for the tests that read it."""
    out = set()
    for s in states:
        assumed = set(s.assumed)
        for name in names:
            assumed -= {(empty_key(name), not empty)}
            assumed.add((empty_key(name), empty))
        out.add(evolve(s, assumed=frozenset(assumed)))
    return out


def _guarded(ctx: Frame, test: cst.BaseExpression) -> tuple[Frame, Frame]:
    """The contexts of an `if`'s two branches, with the branch taken added to the guards."""
    key, polarity = condition_key(test)
    text = key if key is not None else code_of(test)
    return (
        replace(ctx, guards=(*ctx.guards, (text, polarity))),
        replace(ctx, guards=(*ctx.guards, (text, not polarity))),
    )


def _sync_or_not(s: State) -> tuple[State, State]:
    """Entering `accelerator.accumulate(...)`: this micro-batch syncs (steps) or it does not."""
    others = frozenset(a for a in s.assumed if a[0] != SYNC_GRADIENTS)
    return (
        evolve(s, assumed=others | {(SYNC_GRADIENTS, True)}),
        evolve(s, assumed=others | {(SYNC_GRADIENTS, False)}),
    )


def _leaving(ctx: Frame, block: cst.BaseSuite) -> Frame:
    """A branch that ends with continue/break/return/raise skips the rest of the iteration:
    a reset there discards on purpose (a bad batch), it does not defeat accumulation."""
    return replace(ctx, leaving=ctx.leaving or ends_by_leaving(block))


def _forget(s: State, targets: set[str]) -> State:
    """Drop remembered conditions that read a name just rebound."""
    if not s.assumed or not targets:
        return s
    kept = frozenset(a for a in s.assumed if not (condition_names(a[0]) & targets))
    return s if kept == s.assumed else evolve(s, assumed=kept)


def _next_iteration(s: State, assigned: set[str], loop: Loop) -> State:
    kept = frozenset(a for a in s.assumed if not (condition_names(a[0]) & assigned))
    residues = s.residues
    if residues:
        moved = set()
        for residue in residues:
            if residue.counter == loop.counter:
                shifted = residue.next_pass()
                if shifted is not None:
                    moved.add(shifted)
            elif residue.counter == loop.advanced or not (
                ({residue.counter} | condition_names(residue.modulus)) & assigned
            ):
                moved.add(residue)
        residues = frozenset(moved)
    last_pass = frozenset(m for m in s.last_pass if m[0] != loop.node_id)
    return evolve(
        s, assumed=kept, first=s.first - {loop.node_id}, residues=residues, last_pass=last_pass
    )


def _advance(s: State, counter: str) -> State:
    """`counter += 1`: what was known of it modulo k moves on by one."""
    moved = set()
    for residue in s.residues:
        if residue.counter != counter:
            moved.add(residue)
        else:
            shifted = residue.next_pass()
            if shifted is not None:
                moved.add(shifted)
    return evolve(s, residues=frozenset(moved)) if moved != set(s.residues) else s


def _mark_last_pass(states: set[State], loop: Loop, last: bool | None) -> set[State]:
    if last is None:
        return states
    return {evolve(s, last_pass=s.last_pass | {(loop.node_id, last)}) for s in states}


def _branch_on_residue(
    counting: tuple[ResidueTest, Loop], s: State, ctx: Frame
) -> tuple[set[State], set[State]]:
    test, loop = counting
    known = s.residue(test.counter, test.modulus)
    if known is None and loop.node_id in s.first and test.counter == loop.counter:
        known = Residue(test.counter, test.modulus, exact=loop.start)
        s = s.with_residue(None, known)
    value = known.value(test.residue) if known is not None else None
    if value is not None:
        return ({s}, set()) if value == test.equal else (set(), {s})
    base = known or Residue(test.counter, test.modulus)
    holds = s.with_residue(known, base.assume(test.residue, True))
    fails = s.with_residue(known, base.assume(test.residue, False))
    return ({holds}, {fails}) if test.equal else ({fails}, {holds})


def _relation(reset_models: Iterable[str], owner_models: frozenset[str]) -> Cover:
    """A reset of `reset_models` against an owner built on `owner_models`: a reset of a model
    (or of one it is part of) covers it; of a part of it, maybe (the rest keeps its gradient)."""
    if not owner_models:
        return Cover.NOT
    full = partial = False
    for reset in reset_models:
        for model in owner_models:
            if model == reset or model.startswith(f"{reset}."):
                full = True
            elif reset.startswith(f"{model}."):
                partial = True
    if full:
        return Cover.SURELY
    return Cover.MAYBE if partial else Cover.NOT
