"""The abstract state of gradients along one class of paths, and how events change it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Union

from gradlint.analysis.counters import Residue
from gradlint.analysis.events import Site


@dataclass(frozen=True)
class Lost:
    """Gradient from `backward` that `reset` cleared before any update read it."""

    backward: Site
    reset: Site
    certain: bool  # the reset surely covered this owner's parameters
    deliberate: bool  # the reset is in a branch that then leaves the iteration (a skipped batch)


@dataclass(frozen=True)
class Facts:
    """What is known about one owner's `.grad` on a path."""

    fresh: frozenset[Site] = frozenset()  # backward sites since the last reset or update
    used_by: Site | None = None  # the update that already read the present gradient
    # (update that used it, backward that added onto it); `stale_sure`: that backward's loss
    # was computed from this owner's model, so autograd surely reaches it
    stale: tuple[Site, Site] | None = None
    stale_sure: bool = False
    lost: frozenset[Lost] = frozenset()
    unknown: bool = False  # an opaque call received the owner: nothing may be claimed
    partial: bool = False  # paths were merged: `fresh` lists only the sites common to all


EMPTY = Facts()
UNKNOWN = Facts(unknown=True)


@dataclass(frozen=True)
class StaleGradient:
    """GL001: `update` reads gradient that `previous_update` already used, plus `backward`'s."""

    owner: str
    backward: Site
    previous_update: Site
    update: Site
    when: str | None = None  # only for some values: "`k` is 1"


@dataclass(frozen=True)
class DiscardedGradient:
    """GL002: `reset` cleared `backward`'s gradient before `update` could read it."""

    owner: str
    reset: Site
    backward: Site
    update: Site
    nothing_left: bool  # the update found no gradient at all


Finding = Union[StaleGradient, DiscardedGradient]


def backward(facts: Facts, site: Site, reaches: bool) -> Facts:
    """`reaches`: the loss is known to come from this owner's model. Every backward is taken to
    reach every owner; the one known to reach it is the better place to report."""
    if facts.used_by is not None and (facts.stale is None or (reaches and not facts.stale_sure)):
        if facts.stale is None or reaches:
            facts = replace(facts, stale=(facts.used_by, site), stale_sure=reaches)
    return replace(facts, fresh=facts.fresh | {site})


def update(facts: Facts, owner: str, site: Site) -> tuple[Facts, list[Finding]]:
    findings: list[Finding] = []
    if not facts.unknown:
        if facts.stale is not None:
            used, added = facts.stale
            findings.append(StaleGradient(owner, added, used, site))
        for lost in sorted(facts.lost, key=_lost_order):
            if not lost.certain:
                continue
            if not facts.fresh and not facts.partial:
                findings.append(DiscardedGradient(owner, lost.reset, lost.backward, site, True))
            elif lost.backward in facts.fresh and not lost.deliberate:
                findings.append(DiscardedGradient(owner, lost.reset, lost.backward, site, False))
    return Facts(used_by=site), findings


def reset(facts: Facts, site: Site, certain: bool, deliberate: bool) -> Facts:
    if facts.unknown:
        return EMPTY if certain else facts
    lost = facts.lost | {Lost(b, site, certain, deliberate) for b in facts.fresh}
    return Facts(lost=lost)


def write(facts: Facts, site: Site, certain: bool) -> Facts:
    """A gradient written by hand replaces what was there: a reset that discards nothing the
    user meant to keep, then gradient the next update reads."""
    if facts.unknown and not certain:
        return facts
    return Facts(fresh=frozenset({site}))


def _lost_order(lost: Lost) -> tuple[int, int]:
    return (lost.reset.seq, lost.backward.seq)


@dataclass(frozen=True)
class State:
    owners: tuple[tuple[str, Facts], ...]
    background: frozenset[Site] = frozenset()  # every backward so far, for owners named late
    assumed: frozenset[tuple[str, bool]] = frozenset()  # conditions branched on, and their value
    first: frozenset[int] = frozenset()  # loops (by id) in their first iteration
    residues: frozenset[Residue] = frozenset()  # loop counters modulo k
    last_pass: frozenset[tuple[int, bool]] = frozenset()  # (loop, is this its last pass?)
    tracked: tuple[object, ...] = ()  # each tracker's value (see analysis.tracking), in order

    def __hash__(self) -> int:
        # states live in sets and are hashed again and again: computed once (the fields are
        # immutable; `replace` builds a new state through `__init__`, without this cache)
        known = self.__dict__.get("_hash")
        if known is None:
            known = hash(
                (
                    self.owners,
                    self.background,
                    self.assumed,
                    self.first,
                    self.residues,
                    self.last_pass,
                    self.tracked,
                )
            )
            object.__setattr__(self, "_hash", known)
        return known

    def residue(self, counter: str, modulus: str) -> Residue | None:
        for known in self.residues:
            if known.counter == counter and known.modulus == modulus:
                return known
        return None

    def with_residue(self, old: Residue | None, new: Residue) -> State:
        kept = self.residues - {old} if old is not None else self.residues
        return evolve(self, residues=kept | {new})

    def facts(self, owner: str) -> Facts:
        for key, facts in self.owners:
            if key == owner:
                return facts
        return Facts(fresh=self.background)

    def with_facts(self, changes: dict[str, Facts]) -> State:
        merged = dict(self.owners)
        merged.update(changes)
        return evolve(self, owners=tuple(sorted(merged.items(), key=lambda kv: kv[0])))


def widen(
    states: set[State],
    join: Callable[[list[tuple[object, ...]]], tuple[object, ...]] | None = None,
) -> set[State]:
    """Merge states that differ only in which backward sites are fresh (and, given `join`,
    in the trackers' values, which it joins).

    The merged state keeps the sites common to all (and says so with `partial`), so whatever
    it reports holds on every merged path: precision is kept, some findings may be lost.
    """
    groups: dict[tuple, list[State]] = {}
    for s in states:
        shape = tuple(
            (key, f.used_by, f.stale, f.stale_sure, f.lost, f.unknown) for key, f in s.owners
        )
        tracked = s.tracked if join is None else ()
        group = (shape, s.assumed, s.first, s.residues, s.last_pass, tracked)
        groups.setdefault(group, []).append(s)
    merged: set[State] = set()
    for members in groups.values():
        if len(members) == 1:
            merged.add(members[0])
            continue
        owners = []
        for index, (key, facts) in enumerate(members[0].owners):
            every = [m.owners[index][1] for m in members]
            common = frozenset.intersection(*(f.fresh for f in every))
            partial = any(f.partial or f.fresh != common for f in every)
            owners.append((key, replace(facts, fresh=common, partial=partial)))
        background = frozenset.intersection(*(m.background for m in members))
        tracked = members[0].tracked if join is None else join([m.tracked for m in members])
        merged.add(evolve(members[0], owners=tuple(owners), background=background, tracked=tracked))
    return merged


def evolve(s: State, **changes: object) -> State:
    """`s` with some fields changed: `dataclasses.replace` without its checks, for the many
    states the path analysis makes (a third of its time went there)."""
    new = object.__new__(State)
    fields = new.__dict__
    fields.update(s.__dict__)
    fields.pop("_hash", None)
    fields.update(changes)
    return new
