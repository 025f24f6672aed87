"""The language server's latency after an edit: from a didChange to its publishDiagnostics.

Starts `gradlint server` over stdio, opens a file, then makes small edits one after another (a
number on a line changes, as when tuning a learning rate) and times each edit until the
diagnostics of that very version arrive. Each edit follows the previous one's diagnostics, as
an edit after a pause in typing does: the server lints it at once (its debounce only holds back
a change that follows another within 0.1 s).

    python benchmarks/lsp_latency.py                     # a generated ~1,000-line training script
                                                         # and accelerate's test_sync.py if the
                                                         # corpus is there (benchmarks/corpus.py)
    python benchmarks/lsp_latency.py train.py --edits 50

Standard library, pygls and lsprotocol only (`pip install "torch-gradlint[lsp]"`).
`latencies(path, edits)` is what benchmarks/run.py imports.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from lsprotocol import types
from pygls.lsp.client import LanguageClient

DEFAULT_EDITS = 20
SCRIPT_LINES = 1000
REPLY_SECONDS = 120  # longer than the server's 30 s time limit: a lint that never ends fails
ROOT = Path(__file__).resolve().parent.parent
# the slowest file of the corpora for the analysis, fetched by benchmarks/corpus.py
WORST_FILE = "accelerate-*/accelerate/test_utils/scripts/test_sync.py"
_NUMBER = re.compile(r"(?<![\w.])\d+(?![\w.])")


def latencies(path: Path, edits: int = DEFAULT_EDITS) -> list[float]:
    """Seconds from each of `edits` didChange notifications to the diagnostics of its version."""
    return asyncio.run(_session(path, edits))[1]


def default_script() -> Path:
    """The generated training script, written to a temporary folder (outside any project, so
    the default settings apply)."""
    folder = Path(tempfile.gettempdir()) / "gradlint-lsp-latency"
    folder.mkdir(exist_ok=True)
    path = folder / "train.py"
    path.write_text(training_script(SCRIPT_LINES), encoding="utf-8")
    return path


def default_inputs() -> list[Path]:
    return [default_script(), *sorted((ROOT / ".corpus" / "src").glob(WORST_FILE))[:1]]


class _Client:
    """A client of one `gradlint server` process that timestamps every publishDiagnostics."""

    def __init__(self) -> None:
        self.language_client = LanguageClient("gradlint-lsp-latency", "1")
        self.published: asyncio.Queue[tuple[float, types.PublishDiagnosticsParams]] = (
            asyncio.Queue()
        )

        @self.language_client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def on_diagnostics(params: types.PublishDiagnosticsParams) -> None:
            self.published.put_nowait((time.perf_counter(), params))

    async def diagnostics_of(self, uri: str, version: int) -> float:
        """When the diagnostics of `version` arrived; earlier versions' are skipped."""
        while True:
            arrived, params = await asyncio.wait_for(self.published.get(), REPLY_SECONDS)
            if params.uri == uri and params.version == version:
                return arrived


async def _session(path: Path, edits: int) -> tuple[float, list[float]]:
    """The latency of opening `path`, and of each edit after it."""
    text = path.read_text(encoding="utf-8")
    uri = path.resolve().as_uri()
    client = _Client()
    lsp = client.language_client
    await lsp.start_io(sys.executable, "-m", "gradlint", "server")
    try:
        await lsp.initialize_async(
            types.InitializeParams(capabilities=types.ClientCapabilities(), process_id=None)
        )
        lsp.initialized(types.InitializedParams())
        sent = time.perf_counter()
        lsp.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=uri, language_id="python", version=1, text=text
                )
            )
        )
        opened = await client.diagnostics_of(uri, 1) - sent
        seconds = []
        for version, (line, start, end, new) in enumerate(_number_edits(text, edits), start=2):
            sent = time.perf_counter()
            lsp.text_document_did_change(
                types.DidChangeTextDocumentParams(
                    text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                    content_changes=[
                        types.TextDocumentContentChangePartial(
                            range=types.Range(
                                start=types.Position(line=line, character=start),
                                end=types.Position(line=line, character=end),
                            ),
                            text=new,
                        )
                    ],
                )
            )
            seconds.append(await client.diagnostics_of(uri, version) - sent)
        await lsp.shutdown_async(None)
        lsp.exit(None)
        await lsp.stop()
    finally:
        if lsp._server is not None and lsp._server.returncode is None:
            lsp._server.kill()
    return opened, seconds


def _number_edits(text: str, count: int) -> list[tuple[int, int, int, str]]:
    """`count` edits (line, start, end, new text), each changing a number on a line spread over
    the file; positions are in ASCII-only lines, where code points and UTF-16 units agree."""
    numbers = [
        (index, match.start(), match.group())
        for index, line in enumerate(text.splitlines())
        if line.isascii() and not line.lstrip().startswith("#")
        for match in _NUMBER.finditer(line)
    ]
    if not numbers:
        raise SystemExit("no number to edit in the file")
    current = {(line, start): old for line, start, old in numbers}
    chosen = []
    for edit in range(count):
        line, start, _ = numbers[(edit * 7919) % len(numbers)]  # a prime step: spread out
        old = current[line, start]
        new = str(int(old) + 1)
        chosen.append((line, start, start + len(old), new))
        current[line, start] = new
    return chosen


# --- a realistic training script ---------------------------------------------------------------

HEADER = '''\
"""Train and evaluate image and text models (generated for gradlint's latency benchmark)."""

import argparse
import math
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset


@dataclass
class Config:
    epochs: int = 10
    batch_size: int = 32
    lr: float = 0.001
    accumulation: int = 4
    clip: float = 1.0
    log_every: int = 50
    device: str = "cuda" if torch.cuda.is_available() else "cpu"

'''

PART = """
class Block{n}(nn.Module):
    def __init__(self, width: int = {width}, dropout: float = 0.{n1}):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, 4 * width)
        self.fc2 = nn.Linear(4 * width, width)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        h = self.fc2(F.gelu(self.fc1(self.norm(x))))
        return x + self.dropout(h)


class Model{n}(nn.Module):
    def __init__(self, width: int = {width}, depth: int = {depth}, classes: int = 10):
        super().__init__()
        self.embed = nn.Linear(32, width)
        self.blocks = nn.ModuleList([Block{n}(width) for _ in range(depth)])
        self.head = nn.Linear(width, classes)

    def forward(self, x):
        x = self.embed(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x.mean(dim=1))


class Data{n}(Dataset):
    def __init__(self, size: int = {size}):
        self.x = torch.randn(size, 16, 32)
        self.y = torch.randint(0, 10, (size,))

    def __len__(self):
        return len(self.x)

    def __getitem__(self, index):
        return self.x[index], self.y[index]


def train_epoch_{n}(model, loader, optimizer, scheduler, config):
    model.train()
    total = 0.0
    for step, (x, y) in enumerate(loader):
        x, y = x.to(config.device), y.to(config.device)
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
        optimizer.step()
        scheduler.step()
        total += loss.item()
        if step % config.log_every == 0:
            print(f"step {{step}}: loss {{loss.item():.4f}}")
    return total / max(len(loader), 1)


def train_accumulating_{n}(model, loader, optimizer, config):
    model.train()
    optimizer.zero_grad()
    for step, (x, y) in enumerate(loader):
        loss = F.cross_entropy(model(x), y) / config.accumulation
        loss.backward()
        if (step + 1) % config.accumulation == 0:
            optimizer.step()
            optimizer.zero_grad()


def train_mixed_precision_{n}(model, loader, optimizer, config):
    scaler = torch.cuda.amp.GradScaler()
    model.train()
    for x, y in loader:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type="cuda", dtype=torch.float16):
            loss = F.cross_entropy(model(x), y)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
        scaler.step(optimizer)
        scaler.update()


def train_forgetful_{n}(model, loader, optimizer):
    model.train()
    for x, y in loader:
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()


@torch.no_grad()
def evaluate_{n}(model, loader, config):
    model.eval()
    correct, seen, total = 0, 0, 0.0
    for x, y in loader:
        logits = model(x.to(config.device))
        total += F.cross_entropy(logits, y.to(config.device), reduction="sum").item()
        correct += (logits.argmax(dim=-1) == y.to(config.device)).sum().item()
        seen += len(y)
    return total / max(seen, 1), correct / max(seen, 1)


def run_{n}(config):
    model = Model{n}().to(config.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0{n1})
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max={size})
    train = DataLoader(Data{n}(), batch_size=config.batch_size, shuffle=True)
    valid = DataLoader(Data{n}({valid}), batch_size=config.batch_size)
    best = math.inf
    for epoch in range(config.epochs):
        loss = train_epoch_{n}(model, train, optimizer, scheduler, config)
        valid_loss, accuracy = evaluate_{n}(model, valid, config)
        print(f"epoch {{epoch}}: train {{loss:.4f}} valid {{valid_loss:.4f}} acc {{accuracy:.3f}}")
        if valid_loss < best:
            best = valid_loss
            torch.save(model.state_dict(), os.path.join("checkpoints", "model_{n}.pt"))
    return best
"""

FOOTER = """

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=0.001)
    args = parser.parse_args()
    config = Config(epochs=args.epochs, lr=args.lr)
    results = [{runs}]
    print(min(results))


if __name__ == "__main__":
    main()
"""


def training_script(lines: int = SCRIPT_LINES) -> str:
    """About `lines` lines of training code: models, datasets, and train and evaluate
    functions with plain, accumulating, mixed-precision and (one in each part) forgetful loops,
    each part with its own sizes."""
    parts: list[str] = []
    count = len(HEADER.splitlines()) + len(FOOTER.splitlines())
    while count < lines:
        n = len(parts)
        part = PART.format(
            n=n,
            n1=n % 9 + 1,
            width=64 * (n % 4 + 1),
            depth=n % 6 + 2,
            size=512 * (n + 1),
            valid=128 * (n + 1),
        )
        parts.append(part)
        count += len(part.splitlines())
    runs = ", ".join(f"run_{n}(config)" for n in range(len(parts)))
    return HEADER + "".join(parts) + FOOTER.format(runs=runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "files",
        nargs="*",
        type=Path,
        help="default: the generated script and accelerate's test_sync.py when the corpus is there",
    )
    parser.add_argument("--edits", type=int, default=DEFAULT_EDITS, help="edits per file")
    args = parser.parse_args(argv)
    print("latency from a didChange (after a pause in typing) to its diagnostics")
    for path in args.files or default_inputs():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        opened, seconds = asyncio.run(_session(path, args.edits))
        median, worst = statistics.median(seconds), max(seconds)
        print(
            f"{path.name} ({lines} lines): open {1000 * opened:.0f} ms; {len(seconds)} edits:"
            f" median {1000 * median:.0f} ms, max {1000 * worst:.0f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
