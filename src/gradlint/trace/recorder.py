"""Runtime ground truth for GL001/GL002: watch a real PyTorch run, report the bugs that happen.

Model (per leaf tensor ``p`` that backward() reaches):

* a *contribution* is one backward() call that changed ``p.grad``; it remembers the user source
  line of the call and ``p``'s update count at that time (its *epoch*);
* an *update* reads ``p.grad``: an optimizer step over ``p`` (each closure return inside
  ``step(closure)``, or ``GradScaler.step`` even when it skips the step), or a manual in-place
  change of ``p``'s data after user code read ``p.grad``;
* a *reset* drops the contributions in ``p.grad`` (set to None, replaced, or zeroed); those not
  read by any update yet become *lost*, remembered with the line of the reset.

At an update of a set of tensors (an optimizer's parameters, or one tensor updated by hand):

* GL001 for ``p`` holding a contribution older than its previous update and a fresh one; reported
  at the fresh contribution with the lowest backward counter;
* GL002 (b) for ``p`` whose fresh contributions come from the backward line of a lost one;
  GL002 (a) when some tensor of the set has lost contributions and no tensor has a fresh one.
  Both are reported at the reset line (the update line when the reset line is unknown).

How events are seen while a watch is active (everything is undone on exit): Tensor.backward and
torch.autograd.backward are wrapped (the graph is walked for its leaves, whose ``.grad`` identity
and version are compared before and after); global optimizer step pre/post hooks;
Optimizer.zero_grad, Module.zero_grad and GradScaler.step are wrapped; ``Tensor.grad`` and
``Tensor.data`` become properties so that user code touching them is an observation point with
a source line (``p.grad = None``, ``p.grad.zero_()``, ``w.data.sub_(lr * w.grad)``).

torch is imported only when a watch starts, so importing this module stays cheap.
"""

from __future__ import annotations

import functools
import os
import sys
import sysconfig
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Union

if TYPE_CHECKING:
    import torch

Site = tuple[str, int]
_EventKey = tuple[str, int]
PathLike = Union[str, "os.PathLike[str]"]

_STALE_MSG = (
    "stale gradients: this backward() adds onto gradient that an earlier update already used; "
    "the next update reads both (no reset in between)"
)
_NOTHING_MSG = (
    "discarded gradients: gradient was reset before any update used it, "
    "and the next update finds no gradient"
)
_REPEAT_MSG = (
    "discarded gradients: gradient was reset before any update used it, and the next update "
    "reads gradient from the same backward() again (broken accumulation)"
)


@dataclass(frozen=True)
class TraceFinding:
    code: str
    path: str
    line: int
    message: str
    steps: int  # number of updates that showed this finding


class StopTrace(BaseException):
    """Raised into the watched program once ``max_steps`` updates have been evaluated."""


@dataclass
class _Contrib:
    site: Site | None
    seq: int  # global backward counter
    epoch: int  # the tensor's update count when the contribution was added


@dataclass
class _Lost:
    contrib: _Contrib
    reset_site: Site | None


class _Alias:
    """A ``p.data`` alias handed to user code. It has its own version counter, so in-place
    writes through it are invisible in ``p._version``. Temporaries like ``w.data.sub_(...)``
    die right after the write, so hold it strongly until the next barrier has checked it."""

    __slots__ = ("strong", "weak", "version")

    def __init__(self, alias: torch.Tensor) -> None:
        self.strong: torch.Tensor | None = alias
        self.weak = weakref.ref(alias)
        self.version: int = alias._version

    def get(self) -> torch.Tensor | None:
        return self.strong if self.strong is not None else self.weak()


class _State:
    __slots__ = (
        "ref", "pin", "contribs", "lost", "updates", "grad_ref", "grad_id", "grad_ver",
        "grad_nonzero", "grad_aliases", "data_ver", "data_set", "aliases", "grad_read",
        "access_site",
    )  # fmt: skip

    def __init__(self, ref: weakref.ref[torch.Tensor]) -> None:
        self.ref = ref
        # Strong reference while a manual update may be pending, so that it is still seen when
        # the tensor goes out of scope right after it (end of a function or of the script).
        self.pin: torch.Tensor | None = None
        self.contribs: list[_Contrib] = []
        self.lost: list[_Lost] = []
        self.updates = 0
        self.grad_ref: weakref.ref[torch.Tensor] | None = None
        self.grad_id: int | None = None
        self.grad_ver = 0
        self.grad_nonzero = False
        self.grad_aliases: list[_Alias] = []  # `p.grad.data` aliases (`p.grad.data.zero_()`)
        self.data_ver = 0
        self.data_set = False
        self.aliases: list[_Alias] = []
        self.grad_read: Site | None = None  # user read of a non-None .grad since last barrier
        self.access_site: Site | None = None  # last user access of .grad (p.grad.zero_())


@dataclass
class _StepCtx:
    opt: Any
    ids: set[int]
    site: Site | None
    key: _EventKey
    done: bool = False


@dataclass
class _Entry:
    message: str
    keys: set[_EventKey] = field(default_factory=set)


_ACTIVE: Recorder | None = None
_BASE_GRAD: Any = None  # TensorBase's own descriptors, wrapped by properties while watching
_BASE_DATA: Any = None
_MISSING = object()


def _nonzero(g: torch.Tensor) -> bool:
    try:
        if g.is_sparse:
            return bool(g._values().any())
        return bool(g.any())
    except Exception:  # meta/fake tensors and other exotic layouts: assume real gradient
        return True


def _grad_get(t: torch.Tensor) -> torch.Tensor | None:
    g = _BASE_GRAD.__get__(t, type(t))
    rec = _ACTIVE
    if rec is not None and not rec._quiet:
        rec._on_grad_get(t, g)
    return g  # type: ignore[no-any-return]


def _grad_set(t: torch.Tensor, value: torch.Tensor | None) -> None:
    rec = _ACTIVE
    if rec is None or rec._quiet:
        _BASE_GRAD.__set__(t, value)
    else:
        rec._on_grad_set(t, lambda: _BASE_GRAD.__set__(t, value), value is not None)


def _grad_del(t: torch.Tensor) -> None:
    rec = _ACTIVE
    if rec is None or rec._quiet:
        _BASE_GRAD.__delete__(t)
    else:
        rec._on_grad_set(t, lambda: _BASE_GRAD.__delete__(t), False)


def _data_get(t: torch.Tensor) -> torch.Tensor:
    alias = _BASE_DATA.__get__(t, type(t))
    rec = _ACTIVE
    if rec is not None and not rec._quiet:
        rec._on_data_get(t, alias)
    return alias  # type: ignore[no-any-return]


def _data_set(t: torch.Tensor, value: torch.Tensor) -> None:
    rec = _ACTIVE
    if rec is None or rec._quiet:
        _BASE_DATA.__set__(t, value)
    else:
        rec._on_data_set(t, value)


class Recorder:
    """Context manager returned by :func:`watch`; ``findings`` is valid during and after the run."""

    def __init__(
        self, paths: Iterable[PathLike] | None = None, max_steps: int | None = None
    ) -> None:
        self._paths = None if paths is None else {os.path.abspath(os.fspath(p)) for p in paths}
        self.max_steps = max_steps
        self._tracked: dict[int, _State] = {}
        self._grad_owner: dict[int, _State] = {}  # id(p.grad) -> state of p
        self._found: dict[tuple[str, str, int], _Entry] = {}
        self._events: set[_EventKey] = set()
        self._steps: list[_StepCtx] = []
        self._opt_steps: dict[int, int] = {}
        self._path_cache: dict[str, str | None] = {}
        self._lib_dirs: tuple[str, ...] = ()
        self._internal_dirs: tuple[str, ...] = ()
        self._undo: list[Callable[[], None]] = []
        self._quiet = 0  # >0 inside torch's own backward/step/zero_grad: ignore .grad/.data access
        self._seq = 0
        self._barrier = 0
        self._step_serial = 0
        self._in_backward = False
        self._zeroing = False
        self._closing = False
        self._stopped = False

    # ------------------------------------------------------------------ public API

    @property
    def findings(self) -> list[TraceFinding]:
        out = [
            TraceFinding(code, path, line, e.message, len(e.keys))
            for (code, path, line), e in self._found.items()
        ]
        return sorted(out, key=lambda f: (f.path, f.line, f.code))

    def __enter__(self) -> Recorder:
        global _ACTIVE
        if _ACTIVE is not None:
            raise RuntimeError("gradlint.trace.watch() is already active")
        try:
            self._install()
        except BaseException:
            self._uninstall()
            raise
        _ACTIVE = self
        return self

    def __exit__(self, *exc: object) -> None:
        global _ACTIVE
        try:
            self._closing = True
            if not self._stopped:
                self._reconcile_all()  # a manual update in the last iteration
        finally:
            _ACTIVE = None
            self._uninstall()
            self._tracked.clear()
            self._grad_owner.clear()
            self._steps.clear()

    # ------------------------------------------------------------------ patching

    def _install(self) -> None:
        global _BASE_GRAD, _BASE_DATA
        import torch
        from torch.optim import optimizer as optim_mod

        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the gradlint package
        self._internal_dirs = (os.path.dirname(os.path.abspath(torch.__file__)), here)
        lib = set(self._internal_dirs)
        for key in ("stdlib", "platstdlib", "purelib", "platlib"):
            p = sysconfig.get_paths().get(key)
            if p:
                lib.add(os.path.abspath(p))
        self._lib_dirs = tuple(sorted(lib))

        base = torch._C.TensorBase
        _BASE_GRAD = base.__dict__["grad"]
        _BASE_DATA = base.__dict__["data"]
        self._patch(torch.Tensor, "grad", property(_grad_get, _grad_set, _grad_del))
        self._patch(torch.Tensor, "data", property(_data_get, _data_set))

        t_backward = torch.Tensor.backward
        a_backward = torch.autograd.backward

        @functools.wraps(t_backward)
        def tensor_backward(self_t: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            return self._on_backward(t_backward, [self_t], (self_t, *args), kwargs)

        @functools.wraps(a_backward)
        def autograd_backward(*args: Any, **kwargs: Any) -> Any:
            roots = args[0] if args else kwargs.get("tensors")
            listed = [roots] if isinstance(roots, torch.Tensor) else list(roots or ())
            return self._on_backward(a_backward, listed, args, kwargs)

        self._patch(torch.Tensor, "backward", tensor_backward)
        self._patch(torch.autograd, "backward", autograd_backward)

        def params_of_opt(opt: Any) -> Iterator[torch.Tensor]:
            for group in opt.param_groups:
                yield from group["params"]

        for owner, params_fn in (
            (torch.optim.Optimizer, params_of_opt),
            (torch.nn.Module, lambda m: m.parameters()),
        ):
            orig = owner.__dict__["zero_grad"]
            self._patch(owner, "zero_grad", self._zero_grad_wrapper(orig, params_fn))

        scalers: list[Any] = []
        for cls in (getattr(torch.amp, "GradScaler", None), torch.cuda.amp.GradScaler):
            if cls is not None and "step" in cls.__dict__ and cls not in scalers:
                scalers.append(cls)
                self._patch(cls, "step", self._scaler_step_wrapper(cls.__dict__["step"]))

        for register, hook in (
            (optim_mod.register_optimizer_step_pre_hook, self._step_pre),
            (optim_mod.register_optimizer_step_post_hook, self._step_post),
        ):
            handle = register(hook)
            self._undo.append(handle.remove)

    def _uninstall(self) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()

    def _patch(self, owner: Any, name: str, new: Any) -> None:
        old = owner.__dict__.get(name, _MISSING)
        setattr(owner, name, new)

        def undo() -> None:
            if old is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, old)

        self._undo.append(undo)

    def _zero_grad_wrapper(
        self, orig: Callable[..., Any], params_fn: Callable[[Any], Iterable[torch.Tensor]]
    ) -> Callable[..., Any]:
        @functools.wraps(orig)
        def zero_grad(owner: Any, *args: Any, **kwargs: Any) -> Any:
            if self._zeroing:
                return orig(owner, *args, **kwargs)
            site = self._site()
            self._reconcile_all()
            self._new_barrier()
            self._zeroing = True
            self._quiet += 1
            try:
                return orig(owner, *args, **kwargs)
            finally:
                self._zeroing = False
                self._quiet -= 1
                for p in params_fn(owner):
                    st = self._state_of(p)
                    if st is not None:
                        self._reconcile(st, p, reset_site=site, zeroing=True)

        return zero_grad

    def _scaler_step_wrapper(self, orig: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(orig)
        def step(scaler: Any, optimizer: Any, *args: Any, **kwargs: Any) -> Any:
            site = self._site()
            before = self._opt_steps.get(id(optimizer), 0)
            self._quiet += 1
            try:
                result = orig(scaler, optimizer, *args, **kwargs)
            finally:
                self._quiet -= 1
            if self._opt_steps.get(id(optimizer), 0) == before:
                # Skipped for inf/nan gradients: the step still consumed them (user code
                # cannot tell a skipped step from a taken one).
                self._reconcile_all()
                self._new_barrier()
                self._step_serial += 1
                self._update_opt(optimizer, site, ("step", self._step_serial))
            return result

        return step

    # ------------------------------------------------------------------ attribution

    def _site(self) -> Site | None:
        """The innermost frame of user code (outside torch, gradlint, stdlib, site-packages)."""
        frame = sys._getframe(1)
        f: Any = frame
        while f is not None:
            path = self._user_path(f.f_code.co_filename)
            if path is not None:
                return (path, f.f_lineno)
            f = f.f_back
        if self._paths is not None:
            return None
        f = frame  # e.g. backward() called by a library: blame the library's line
        while f is not None:
            name = f.f_code.co_filename
            if not name.startswith("<") and not self._under(
                os.path.abspath(name), self._internal_dirs
            ):
                return (os.path.abspath(name), f.f_lineno)
            f = f.f_back
        return None

    def _user_path(self, filename: str) -> str | None:
        try:
            return self._path_cache[filename]
        except KeyError:
            pass
        result: str | None
        if filename.startswith("<"):
            result = (
                None if (self._paths is not None or filename.startswith("<frozen")) else filename
            )
        else:
            path = os.path.abspath(filename)
            if self._paths is not None:
                result = path if path in self._paths else None
            else:
                result = None if self._under(path, self._lib_dirs) else path
        self._path_cache[filename] = result
        return result

    @staticmethod
    def _under(path: str, dirs: tuple[str, ...]) -> bool:
        return any(path == d or path.startswith(d + os.sep) for d in dirs)

    # ------------------------------------------------------------------ tensor state

    def _state_of(self, t: Any) -> _State | None:
        st = self._tracked.get(id(t))
        return st if st is not None and st.ref() is t else None

    def _track(self, t: torch.Tensor) -> _State:
        st = self._state_of(t)
        if st is not None:
            return st
        key = id(t)

        def gone(ref: weakref.ref[torch.Tensor]) -> None:
            cur = self._tracked.get(key)
            if cur is not None and cur.ref is ref:
                del self._tracked[key]
                if cur.grad_id is not None and self._grad_owner.get(cur.grad_id) is cur:
                    del self._grad_owner[cur.grad_id]

        st = _State(weakref.ref(t, gone))
        st.data_ver = t._version
        self._observe_grad(st, _BASE_GRAD.__get__(t, type(t)), None)
        self._tracked[key] = st
        return st

    def _observe_grad(self, st: _State, g: torch.Tensor | None, nonzero: bool | None) -> None:
        if st.grad_id is not None and self._grad_owner.get(st.grad_id) is st:
            del self._grad_owner[st.grad_id]
        if g is None:
            st.grad_ref, st.grad_id, st.grad_ver, st.grad_nonzero = None, None, 0, False
            st.grad_aliases = []
            return
        if st.grad_ref is None or st.grad_ref() is not g:
            st.grad_aliases = []
        st.grad_ref, st.grad_id, st.grad_ver = weakref.ref(g), id(g), g._version
        st.grad_nonzero = _nonzero(g) if nonzero is None else nonzero
        self._grad_owner[id(g)] = st

    def _in_step(self, t: torch.Tensor) -> bool:
        return any(id(t) in ctx.ids for ctx in self._steps)

    def _reconcile_all(self) -> None:
        for st in list(self._tracked.values()):
            t = st.ref()
            if t is not None:
                self._reconcile(st, t)

    def _new_barrier(self) -> None:
        """backward/step/zero_grad: earlier .grad reads can no longer feed a manual update."""
        self._barrier += 1
        for st in list(self._tracked.values()):  # unpinning may free tensors
            st.grad_read = None
            st.access_site = None
            st.pin = None
            for al in st.aliases + st.grad_aliases:
                al.strong = None

    def _reconcile(
        self,
        st: _State,
        t: torch.Tensor,
        reset_site: Site | None = None,
        zeroing: bool = False,
        assigned: bool = False,
    ) -> None:
        """Account for what happened to ``t`` and ``t.grad`` since the last look."""
        # 1. In-place change of the tensor itself after user code read its .grad: a manual update.
        modified = st.data_set or t._version != st.data_ver
        st.data_set = False
        st.data_ver = t._version
        st.aliases, aliased = _check_aliases(st.aliases)
        if (modified or aliased) and st.grad_read is not None and not self._in_step(t):
            read_site = st.grad_read
            st.grad_read, st.pin = None, None
            self._evaluate([st], read_site, ("manual", self._barrier))

        # 2. .grad set to None, replaced, or zeroed in place.
        g: torch.Tensor | None = _BASE_GRAD.__get__(t, type(t))
        site = reset_site if reset_site is not None else st.access_site
        st.access_site = None
        prev = st.grad_ref() if st.grad_ref is not None else None
        if g is None:
            if st.grad_ref is not None:
                self._reset(st, site)
            self._observe_grad(st, None, False)
        elif prev is not g:
            nonzero = _nonzero(g)
            if not nonzero:
                self._reset(st, site)
            elif assigned:  # `p.grad = g` replaces what was there with a gradient of its own
                self._reset(st, site)
                st.lost = [lo for lo in st.lost if lo.reset_site != site]  # replaced, not lost
                self._seq += 1
                _add_contrib(st, _Contrib(site, self._seq, st.updates))
            elif not st.contribs:  # gradient assigned by hand: counts like a backward there
                self._seq += 1
                _add_contrib(st, _Contrib(site, self._seq, st.updates))
            self._observe_grad(st, g, nonzero)
        else:
            st.grad_aliases, written = _check_aliases(st.grad_aliases)
            if not written and g._version == st.grad_ver:
                return
            nonzero = _nonzero(g)
            # Scaling an all-zero gradient (clipping, unscale_) is not a reset.
            if zeroing or (st.grad_nonzero and not nonzero):
                self._reset(st, site)
            self._observe_grad(st, g, nonzero)

    def _reset(self, st: _State, site: Site | None) -> None:
        for c in st.contribs:
            known = any(lo.contrib.site == c.site and lo.reset_site == site for lo in st.lost)
            if c.epoch == st.updates and not known:
                st.lost.append(_Lost(c, site))
        st.contribs = []
        st.grad_read, st.pin = None, None

    # ------------------------------------------------------------------ verdicts

    def _update_opt(self, opt: Any, site: Site | None, key: _EventKey) -> None:
        states = []
        for group in opt.param_groups:
            for p in group["params"]:
                st = self._state_of(p)
                if st is not None:
                    states.append(st)
        self._evaluate(states, site, key)

    def _evaluate(self, states: list[_State], site: Site | None, key: _EventKey) -> None:
        if self._stopped:
            return
        if key not in self._events:
            if self.max_steps is not None and len(self._events) >= self.max_steps:
                if not self._closing:
                    self._stopped = True
                    raise StopTrace(f"stopped after {self.max_steps} updates")
                return
            self._events.add(key)
        found: list[tuple[str, Site | None, str]] = []
        fresh_any = False
        for st in states:
            fresh = [c for c in st.contribs if c.epoch == st.updates]
            if not fresh:
                continue
            fresh_any = True
            if any(c.epoch < st.updates for c in st.contribs):
                found.append(("GL001", min(fresh, key=lambda c: c.seq).site, _STALE_MSG))
            fresh_sites = {c.site for c in fresh if c.site is not None}
            for lost in st.lost:
                if lost.contrib.site in fresh_sites:
                    found.append(("GL002", lost.reset_site or site, _REPEAT_MSG))
        if not fresh_any:
            for st in states:
                for lost in st.lost:
                    found.append(("GL002", lost.reset_site or site, _NOTHING_MSG))
        for st in states:
            st.updates += 1
            st.lost = []
        for code, where, message in found:
            if where is not None:
                entry = self._found.setdefault((code, where[0], where[1]), _Entry(message))
                entry.keys.add(key)

    # ------------------------------------------------------------------ events

    def _on_backward(
        self, orig: Callable[..., Any], roots: list[Any], args: Any, kwargs: dict[str, Any]
    ) -> Any:
        if self._in_backward:  # Tensor.backward -> torch.autograd.backward
            return orig(*args, **kwargs)
        site = self._site()
        leaves = [(self._track(t), t) for t in _leaves(roots)]
        self._reconcile_all()
        self._new_barrier()
        self._seq += 1
        seq = self._seq
        self._in_backward = True
        self._quiet += 1
        try:
            return orig(*args, **kwargs)
        finally:
            self._in_backward = False
            self._quiet -= 1
            for st, t in leaves:
                g: torch.Tensor | None = _BASE_GRAD.__get__(t, type(t))
                if g is None:
                    continue
                prev = st.grad_ref() if st.grad_ref is not None else None
                if prev is not g or g._version != st.grad_ver:
                    _add_contrib(st, _Contrib(site, seq, st.updates))
                    self._observe_grad(st, g, None)

    def _step_pre(self, opt: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        site = self._site()
        self._reconcile_all()
        self._new_barrier()
        self._step_serial += 1
        self._opt_steps[id(opt)] = self._opt_steps.get(id(opt), 0) + 1
        ids = {id(p) for group in opt.param_groups for p in group["params"]}
        ctx = _StepCtx(opt, ids, site, ("step", self._step_serial))
        closure = args[1] if len(args) > 1 else kwargs.get("closure")
        result = None
        if closure is None:
            self._update_opt(opt, site, ctx.key)
            ctx.done = True
        else:
            wrapped = self._wrap_closure(closure, ctx)
            if len(args) > 1:
                args = (args[0], wrapped, *args[2:])
            else:
                kwargs = {**kwargs, "closure": wrapped}
            result = (args, kwargs)
        self._steps.append(ctx)
        self._quiet += 1
        return result

    def _wrap_closure(self, closure: Callable[[], Any], ctx: _StepCtx) -> Callable[[], Any]:
        # The step reads the gradient each time the closure returns (LBFGS calls it repeatedly).
        @functools.wraps(closure)
        def wrapped() -> Any:
            saved, self._quiet = self._quiet, 0
            try:
                loss = closure()
            finally:
                self._quiet = saved
            self._reconcile_all()
            self._update_opt(ctx.opt, ctx.site, ctx.key)
            ctx.done = True
            return loss

        return wrapped

    def _step_post(self, opt: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        idx = max((i for i, c in enumerate(self._steps) if c.opt is opt), default=None)
        if idx is None:
            return
        ctx = self._steps[idx]
        if not ctx.done:
            self._update_opt(opt, ctx.site, ctx.key)
        self._reconcile_all()  # absorb the step's own writes while it is still on the stack
        del self._steps[idx]
        self._quiet -= 1

    def _on_grad_get(self, t: torch.Tensor, g: torch.Tensor | None) -> None:
        st = self._state_of(t)
        if st is None:
            return
        self._reconcile(st, t)
        site = self._site()
        st.access_site = site
        if g is not None:
            st.grad_read, st.pin = site, t

    def _on_grad_set(self, t: torch.Tensor, assign: Callable[[], None], to_tensor: bool) -> None:
        st = self._state_of(t)
        if st is None and to_tensor and t.is_leaf and t.requires_grad:
            st = self._track(t)
        if st is not None:
            self._reconcile(st, t)
        assign()
        if st is not None:
            self._reconcile(st, t, reset_site=self._site(), assigned=True)

    def _on_data_get(self, t: torch.Tensor, alias: torch.Tensor) -> None:
        st = self._state_of(t)
        if st is not None:
            self._reconcile(st, t)
            st.aliases.append(_Alias(alias))
            return
        owner = self._grad_owner.get(id(t))  # t is the .grad of a tracked tensor
        p = owner.ref() if owner is not None else None
        if (
            owner is not None
            and p is not None
            and owner.grad_ref is not None
            and owner.grad_ref() is t
        ):
            self._reconcile(owner, p)
            owner.grad_aliases.append(_Alias(alias))

    def _on_data_set(self, t: torch.Tensor, value: torch.Tensor) -> None:
        st = self._state_of(t)
        if st is not None:
            self._reconcile(st, t)
        _BASE_DATA.__set__(t, value)
        if st is not None and not any(al.get() is value for al in st.aliases):
            st.data_set = True  # `w.data -= x` sets back its own alias; anything else is new data


def _add_contrib(st: _State, new: _Contrib) -> None:
    # The earliest contribution per (line, epoch) decides every verdict; keeping only it bounds
    # the list for tensors that are never reset (e.g. not in any optimizer).
    if not any(c.site == new.site and c.epoch == new.epoch for c in st.contribs):
        st.contribs.append(new)


def _check_aliases(aliases: list[_Alias]) -> tuple[list[_Alias], bool]:
    """Drop dead aliases; report whether any was written to since the last check."""
    kept, written = [], False
    for al in aliases:
        a = al.get()
        if a is None:
            continue
        if a._version != al.version:
            written = True
            al.version = a._version
        kept.append(al)
    return kept, written


def _leaves(roots: list[Any]) -> list[torch.Tensor]:
    """Leaf tensors that a backward from ``roots`` can accumulate into."""
    import torch

    out: list[torch.Tensor] = []
    seen: dict[int, Any] = {}  # keeps nodes alive so ids stay unique during the walk
    stack: list[Any] = []
    for r in roots:
        if isinstance(r, torch.Tensor):
            if r.grad_fn is not None:
                stack.append(r.grad_fn)
            elif r.requires_grad:
                out.append(r)
        elif getattr(r, "node", None) is not None:  # torch.autograd.graph.GradientEdge
            stack.append(r.node)
    while stack:
        fn = stack.pop()
        if fn is None or id(fn) in seen:
            continue
        seen[id(fn)] = fn
        var = getattr(fn, "variable", None)  # AccumulateGrad
        if isinstance(var, torch.Tensor):
            out.append(var)
        stack.extend(nxt for nxt, _ in fn.next_functions)
    return out


def watch(paths: Iterable[PathLike] | None = None, *, max_steps: int | None = None) -> Recorder:
    """Watch PyTorch training code: ``with watch() as w: ...`` then read ``w.findings``.

    ``paths`` restricts attribution to these source files (a backward, reset or update whose
    call stack has none of them is attributed nowhere). ``max_steps`` raises :class:`StopTrace`
    into the program at the first update after that many updates.
    """
    return Recorder(paths, max_steps)
