"""Tests of the runtime tracer (gradlint.trace): real PyTorch runs on tiny CPU models."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from gradlint.trace import TraceResult, run_script, watch  # noqa: E402

HEADER = """\
import torch
model = torch.nn.Linear(4, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
x, y = torch.randn(8, 4), torch.randn(8, 1)
"""


def _script(tmp_path: Path, body: str, header: str = HEADER) -> tuple[Path, str]:
    src = header + textwrap.dedent(body)
    path = tmp_path / "train.py"
    path.write_text(src)
    return path, src


def _line(src: str, marker: str) -> int:
    hits = [i for i, text in enumerate(src.splitlines(), 1) if text.rstrip().endswith(marker)]
    assert len(hits) == 1, (marker, hits)
    return hits[0]


def _trace(tmp_path: Path, body: str, header: str = HEADER) -> tuple[TraceResult, str]:
    path, src = _script(tmp_path, body, header)
    res = run_script(path)
    assert res.traceback is None, res.traceback
    assert res.exit_code == 0
    assert all(f.path == str(path) for f in res.findings)
    return res, src


def _verdict(res: TraceResult) -> list[tuple[str, int, int]]:
    return [(f.code, f.line, f.steps) for f in res.findings]


# --------------------------------------------------------------------------- optimizer loops


def test_zero_grad_at_top_is_clean(tmp_path: Path) -> None:
    res, _ = _trace(
        tmp_path,
        """
        for i in range(4):
            opt.zero_grad()
            loss = ((model(x) - y) ** 2).mean()
            loss.backward()
            opt.step()
        """,
    )
    assert res.findings == []


def test_zero_grad_after_step_is_clean(tmp_path: Path) -> None:
    res, _ = _trace(
        tmp_path,
        """
        for i in range(4):
            loss = ((model(x) - y) ** 2).mean()
            loss.backward()
            opt.step()
            opt.zero_grad()
        """,
    )
    assert res.findings == []


def test_no_zero_grad_is_stale(tmp_path: Path) -> None:
    res, src = _trace(
        tmp_path,
        """
        for i in range(4):
            loss = ((model(x) - y) ** 2).mean()
            loss.backward()  # <bw>
            opt.step()
        """,
    )
    assert _verdict(res) == [("GL001", _line(src, "# <bw>"), 3)]
    assert res.findings[0].message.startswith("stale gradients")


def test_zero_grad_only_before_loop_is_stale(tmp_path: Path) -> None:
    res, src = _trace(
        tmp_path,
        """
        opt.zero_grad()
        for i in range(5):
            loss = ((model(x) - y) ** 2).mean()
            loss.backward()  # <bw>
            opt.step()
        """,
    )
    assert _verdict(res) == [("GL001", _line(src, "# <bw>"), 4)]


@pytest.mark.parametrize(
    "reset",
    ["opt.zero_grad()", "opt.zero_grad(set_to_none=True)", "model.zero_grad(set_to_none=False)"],
)
def test_zero_grad_between_backward_and_step_discards(tmp_path: Path, reset: str) -> None:
    res, src = _trace(
        tmp_path,
        f"""
        for i in range(4):
            loss = ((model(x) - y) ** 2).mean()
            loss.backward()
            {reset}  # <zg>
            opt.step()
        """,
    )
    assert _verdict(res) == [("GL002", _line(src, "# <zg>"), 4)]
    assert "finds no gradient" in res.findings[0].message


def test_manual_reset_between_backward_and_step_discards(tmp_path: Path) -> None:
    res, src = _trace(
        tmp_path,
        """
        for i in range(3):
            loss = ((model(x) - y) ** 2).mean()
            loss.backward()
            for p in model.parameters():
                p.grad = None  # <reset>
            opt.step()
        """,
    )
    assert _verdict(res) == [("GL002", _line(src, "# <reset>"), 3)]


def test_correct_accumulation_is_clean(tmp_path: Path) -> None:
    res, _ = _trace(
        tmp_path,
        """
        for i in range(6):
            loss = ((model(x) - y) ** 2).mean() / 2
            loss.backward()
            if (i + 1) % 2 == 0:
                opt.step()
                opt.zero_grad()
        """,
    )
    assert res.findings == []


def test_broken_accumulation_discards(tmp_path: Path) -> None:
    res, src = _trace(
        tmp_path,
        """
        for i in range(6):
            opt.zero_grad()  # <zg>
            loss = ((model(x) - y) ** 2).mean() / 2
            loss.backward()
            if (i + 1) % 2 == 0:
                opt.step()
        """,
    )
    assert _verdict(res) == [("GL002", _line(src, "# <zg>"), 3)]
    assert "broken accumulation" in res.findings[0].message


def test_gan_with_two_optimizers_is_clean(tmp_path: Path) -> None:
    res, _ = _trace(
        tmp_path,
        """
        import torch
        G = torch.nn.Linear(2, 4)
        D = torch.nn.Linear(4, 1)
        optG = torch.optim.SGD(G.parameters(), lr=0.01)
        optD = torch.optim.SGD(D.parameters(), lr=0.01)
        bce = torch.nn.BCEWithLogitsLoss()
        real = torch.randn(8, 4)
        for i in range(4):
            fake = G(torch.randn(8, 2))
            optD.zero_grad()
            lossD = bce(D(real), torch.ones(8, 1)) + bce(D(fake.detach()), torch.zeros(8, 1))
            lossD.backward()
            optD.step()
            optG.zero_grad()
            lossG = bce(D(fake), torch.ones(8, 1))
            lossG.backward()  # also fills D's .grad, which optD.zero_grad() clears: not a bug
            optG.step()
        """,
        header="",
    )
    assert res.findings == []


def test_two_losses_with_retain_graph_is_clean(tmp_path: Path) -> None:
    res, _ = _trace(
        tmp_path,
        """
        for i in range(4):
            opt.zero_grad()
            out = model(x)
            loss1 = ((out - y) ** 2).mean()
            loss2 = out.abs().mean()
            loss1.backward(retain_graph=True)
            loss2.backward()
            opt.step()
        """,
    )
    assert res.findings == []


def test_two_losses_without_reset_reports_first_backward(tmp_path: Path) -> None:
    res, src = _trace(
        tmp_path,
        """
        for i in range(3):
            out = model(x)
            ((out - y) ** 2).mean().backward(retain_graph=True)  # <bw1>
            torch.autograd.backward(out.abs().mean())
            opt.step()
        """,
    )
    assert _verdict(res) == [("GL001", _line(src, "# <bw1>"), 2)]


def test_freezing_a_subset_is_clean(tmp_path: Path) -> None:
    res, _ = _trace(
        tmp_path,
        """
        import torch
        model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        x, y = torch.randn(8, 4), torch.randn(8, 1)
        for epoch in range(4):
            opt.zero_grad()
            ((model(x) - y) ** 2).mean().backward()
            if epoch < 2:
                for p in model[0].parameters():
                    p.grad = None
            opt.step()
        """,
        header="",
    )
    assert res.findings == []


def test_backward_without_update_is_clean(tmp_path: Path) -> None:
    res, _ = _trace(
        tmp_path,
        """
        for i in range(4):
            inp = x.clone().requires_grad_(True)
            model.zero_grad()
            model(inp).sum().backward()
            saliency = inp.grad.abs()
        for i in range(3):
            model(x).sum().backward()
        """,
    )
    assert res.findings == []


# --------------------------------------------------------------------------- manual updates

MANUAL = """\
import torch
w = torch.randn(4, 1, requires_grad=True)
b = torch.zeros(1, requires_grad=True)
x, y = torch.randn(8, 4), torch.randn(8, 1)
lr = 0.1
"""


@pytest.mark.parametrize(
    "update",
    [
        "w.data.sub_(lr * w.grad)\n    b.data.sub_(lr * b.grad)",
        "with torch.no_grad():\n        w -= lr * w.grad\n        b -= lr * b.grad",
        "for p in (w, b):\n        p.data.add_(p.grad, alpha=-lr)",
        "w.data -= lr * w.grad.data\n    b.data -= lr * b.grad.data",
    ],
)
def test_manual_sgd_without_reset_is_stale(tmp_path: Path, update: str) -> None:
    body = f"""
for i in range(4):
    loss = ((x @ w + b - y) ** 2).mean()
    loss.backward()  # <bw>
    {update}
"""
    res, src = _trace(tmp_path, body, header=MANUAL)
    assert _verdict(res) == [("GL001", _line(src, "# <bw>"), 3)]


@pytest.mark.parametrize(
    "reset",
    [
        "w.grad.zero_()\n    b.grad.zero_()",
        "w.grad = None\n    b.grad = None",
        "w.grad.data.zero_()\n    b.grad.data.zero_()",
    ],
)
def test_manual_sgd_with_reset_is_clean(tmp_path: Path, reset: str) -> None:
    body = f"""
for i in range(4):
    loss = ((x @ w + b - y) ** 2).mean()
    loss.backward()
    w.data.sub_(lr * w.grad)
    b.data.sub_(lr * b.grad)
    {reset}
"""
    res, _ = _trace(tmp_path, body, header=MANUAL)
    assert res.findings == []


def test_manual_update_over_parameters_is_clean(tmp_path: Path) -> None:
    res, _ = _trace(
        tmp_path,
        """
        for i in range(4):
            ((model(x) - y) ** 2).mean().backward()
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(p.grad, alpha=-0.1)
                    p.grad = None
        """,
    )
    assert res.findings == []


def test_manual_reset_before_manual_update_discards(tmp_path: Path) -> None:
    body = """
for i in range(3):
    loss = ((x @ w - y) ** 2).mean()
    loss.backward()
    w.grad.zero_()  # <reset>
    w.data.sub_(lr * w.grad)
"""
    res, src = _trace(tmp_path, body, header=MANUAL)
    assert _verdict(res) == [("GL002", _line(src, "# <reset>"), 3)]


def test_weight_clipping_after_step_is_not_an_update(tmp_path: Path) -> None:
    res, _ = _trace(
        tmp_path,
        """
        for i in range(4):
            opt.zero_grad()
            ((model(x) - y) ** 2).mean().backward()
            opt.step()
            for p in model.parameters():
                p.data.clamp_(-0.01, 0.01)
        """,
    )
    assert res.findings == []


# --------------------------------------------------------------------------- AMP, closures


@pytest.mark.parametrize("reset", ["opt.zero_grad()", ""])
def test_amp_grad_scaler(tmp_path: Path, reset: str) -> None:
    res, src = _trace(
        tmp_path,
        f"""
        scaler = torch.amp.GradScaler("cpu")
        for i in range(4):
            {reset}
            loss = ((model(x) - y) ** 2).mean()
            scaler.scale(loss).backward()  # <bw>
            scaler.step(opt)
            scaler.update()
        """,
    )
    expected = [] if reset else [("GL001", _line(src, "# <bw>"), 3)]
    assert _verdict(res) == expected


def test_amp_skipped_step_still_consumes_gradient(tmp_path: Path) -> None:
    res, _ = _trace(
        tmp_path,
        """
        scaler = torch.amp.GradScaler("cpu", init_scale=1e38)  # overflows: steps are skipped
        for i in range(4):
            opt.zero_grad()
            loss = ((model(x) - y) ** 2).mean()
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        """,
    )
    assert res.findings == []


def test_lbfgs_closure_is_clean(tmp_path: Path) -> None:
    res, _ = _trace(
        tmp_path,
        """
        opt = torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=4)
        def closure():
            opt.zero_grad()
            loss = ((model(x) - y) ** 2).mean()
            loss.backward()
            return loss
        for i in range(3):
            opt.step(closure)
        """,
    )
    assert res.findings == []


def test_lbfgs_closure_without_reset_is_stale(tmp_path: Path) -> None:
    res, src = _trace(
        tmp_path,
        """
        opt = torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=4)
        def closure():
            loss = ((model(x) - y) ** 2).mean()
            loss.backward()  # <bw>
            return loss
        for i in range(2):
            opt.zero_grad()
            opt.step(closure)
        """,
    )
    (finding,) = res.findings
    assert (finding.code, finding.line) == ("GL001", _line(src, "# <bw>"))


def test_sgd_closure_is_clean(tmp_path: Path) -> None:
    res, _ = _trace(
        tmp_path,
        """
        def closure():
            opt.zero_grad()
            loss = ((model(x) - y) ** 2).mean()
            loss.backward()
            return loss
        for i in range(4):
            opt.step(closure=closure)
        """,
    )
    assert res.findings == []


# --------------------------------------------------------------------------- runner and API


def test_run_script_keeps_exit_code_and_findings(tmp_path: Path) -> None:
    path, src = _script(
        tmp_path,
        """
        import sys
        assert sys.argv[1:] == ["--epochs", "3"], sys.argv
        for i in range(int(sys.argv[2])):
            ((model(x) - y) ** 2).mean().backward()  # <bw>
            opt.step()
        sys.exit(3)
        """,
    )
    argv_before, path_before = sys.argv[:], sys.path[:]
    res = run_script(path, ["--epochs", "3"])
    assert (res.exit_code, res.traceback) == (3, None)
    assert _verdict(res) == [("GL001", _line(src, "# <bw>"), 2)]
    assert (sys.argv, sys.path) == (argv_before, path_before)


def test_run_script_captures_crash_and_keeps_findings(tmp_path: Path) -> None:
    (tmp_path / "helper.py").write_text("def boom(i):\n    raise ValueError(f'boom {i}')\n")
    path, src = _script(
        tmp_path,
        """
        from helper import boom
        for i in range(4):
            ((model(x) - y) ** 2).mean().backward()  # <bw>
            opt.step()
            if i == 2:
                boom(i)
        """,
    )
    res = run_script(path)
    assert res.exit_code == 1
    assert res.traceback is not None
    assert "ValueError: boom 2" in res.traceback
    assert str(path) in res.traceback and "runpy" not in res.traceback
    assert _verdict(res) == [("GL001", _line(src, "# <bw>"), 2)]
    assert "helper" not in sys.modules


def test_run_script_max_steps(tmp_path: Path) -> None:
    path, src = _script(
        tmp_path,
        """
        for i in range(100):
            ((model(x) - y) ** 2).mean().backward()  # <bw>
            opt.step()
        raise AssertionError("not reached")
        """,
    )
    res = run_script(path, max_steps=3)
    assert (res.exit_code, res.traceback, res.stopped) == (0, None, True)
    assert _verdict(res) == [("GL001", _line(src, "# <bw>"), 2)]


def test_run_script_is_deterministic(tmp_path: Path) -> None:
    path, _ = _script(
        tmp_path,
        """
        for i in range(6):
            if i % 3:
                opt.zero_grad()
            ((model(x) - y) ** 2).mean().backward()
            if i % 2:
                opt.step()
        """,
    )
    first = run_script(path)
    assert first.findings
    assert run_script(path) == first


def test_watch_in_process_restricts_paths_and_restores_torch(tmp_path: Path) -> None:
    path, src = _script(
        tmp_path,
        """
        def train(model, opt, x, y):
            for i in range(3):
                ((model(x) - y) ** 2).mean().backward()  # <bw>
                opt.step()
        """,
        header="",
    )
    namespace: dict[str, object] = {}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(8, 4), torch.randn(8, 1)
    originals = (
        torch.Tensor.backward,
        torch.autograd.backward,
        torch.optim.Optimizer.zero_grad,
        torch.nn.Module.zero_grad,
        torch.amp.GradScaler.step,
    )
    with watch(paths=[path]) as w:
        with pytest.raises(RuntimeError), watch():
            pass
        namespace["train"](model, opt, x, y)  # type: ignore[operator]
    assert [(f.code, f.path, f.line, f.steps) for f in w.findings] == [
        ("GL001", str(path), _line(src, "# <bw>"), 2)
    ]
    assert originals == (
        torch.Tensor.backward,
        torch.autograd.backward,
        torch.optim.Optimizer.zero_grad,
        torch.nn.Module.zero_grad,
        torch.amp.GradScaler.step,
    )
    from torch.optim import optimizer as optim_mod

    assert not optim_mod._global_optimizer_pre_hooks
    assert not optim_mod._global_optimizer_post_hooks
    assert "grad" not in torch.Tensor.__dict__ and "data" not in torch.Tensor.__dict__
    with watch(paths=[tmp_path / "other.py"]) as w2:
        namespace["train"](model, opt, x, y)  # type: ignore[operator]
    assert w2.findings == []


def test_importing_trace_does_not_import_torch() -> None:
    src = str(Path(__file__).resolve().parents[1] / "src")
    code = "import sys, gradlint.trace; sys.exit('torch' in sys.modules)"
    env_path = {"PYTHONPATH": src}
    proc = subprocess.run([sys.executable, "-c", code], env={**_env(), **env_path})
    assert proc.returncode == 0


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)
