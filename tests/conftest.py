"""Shared fixtures: tiny seeded configs and data, so that each test takes seconds."""

from __future__ import annotations

import contextlib
import io
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch

from wae.config import Config, preset, set_fields
from wae.data import ImageData, make_synthetic


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Tests (and the processes they start) never write into the user's cache: FID reference
    statistics and image-folder arrays go to a temporary folder for the session."""
    patch = pytest.MonkeyPatch()
    patch.setenv("WAE_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    yield
    patch.undo()


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``make test`` runs ``-n auto``) each worker process gets its share of
    the cores for torch's intra-op threads, so that N workers do not run N x cores threads; a
    SIGINT ignored by whatever started the suite is given back its default."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    # a suite started in the background of a script (`cmd &` without job control, nohup) inherits
    # SIGINT ignored, and so would every process a test starts: the Ctrl-C tests need it as a
    # terminal gives it (a Python handler here is the default action again in a child)
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if workers > 1:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        share = max(1, cores // workers)
        torch.set_num_threads(share)
        # numpy's and scipy's OpenBLAS and scikit-learn's OpenMP have thread pools of their own, of
        # all the cores each: their share too, in this worker (those loaded: threadpoolctl) and in
        # what loads them later or starts from it (the variables, read when a library loads)
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(name, str(share))
        from threadpoolctl import threadpool_limits

        threadpool_limits(share)


@pytest.fixture(autouse=True)
def _seed_and_threads() -> None:
    torch.manual_seed(0)


# a PNG of one white pixel: what a report's figure becomes where the fast suite does not draw it
UNDRAWN_PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGP4DwABAQEAWk1v8QAAAABJRU5ErkJggg=="
)


@pytest.fixture(autouse=True)
def _figures_built_not_drawn(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The report that every training run ends with draws two matplotlib figures: a fifth of the
    fast suite's time (matplotlib 3.11 lays out and renders text glyph by glyph in Python). The
    fast suite builds each figure (its data, axes and the checks that refuse what cannot be
    drawn) but does not render it, unless the test is marked ``figures`` (the report's own
    tests, and those of values that fail only when drawn) or slow. ``make test-figures`` (CI,
    after the slow tests) runs the whole fast suite with every figure drawn
    (``WAE_TEST_FIGURES=draw``)."""
    if os.environ.get("WAE_TEST_FIGURES") == "draw" or request.node.get_closest_marker("figures"):
        return
    if request.node.get_closest_marker("slow"):
        return
    import wae.report

    monkeypatch.setattr(wae.report, "_png", lambda fig: UNDRAWN_PNG)


@pytest.fixture
def tiny_data() -> ImageData:
    """128 training and 32 test 16x16 grey blob images."""
    return make_synthetic(count=128, size=16, seed=0)


def tiny_config(objective: str = "mmd", **settings: object) -> Config:
    """The default preset shrunk for tests: synthetic 16x16 data, the `fast` network (the
    preset's `small` costs 1.7x its FLOPs, and these tests are not of the network), batch 32,
    fp32, 3 epochs."""
    cfg = preset("mnist-fast", objective)
    base = {
        "dataset": "synthetic",
        "arch": "fast",
        "synthetic_size": 16,
        "synthetic_count": 128,
        "batch_size": 32,
        "epochs": 3,
        "precision": "fp32",
        "log_every": 1,
        "eval_size": 32,
        "lr_milestones": (0.34, 0.67),
        "lr_factors": (0.5, 0.2),
    }
    return set_fields(cfg, **{**base, **settings})  # every setting, as a config file lists them


# a small run from the command line: 128 synthetic 28x28 images (4 steps an epoch), the `fast`
# network, fp32, quiet
SMALL_RUN = ["--dataset", "synthetic", "--synthetic-count", "128", "--batch-size", "32", "--precision", "fp32"]
SMALL_RUN += ["--arch", "fast", "--no-progress"]


class Terminal(io.StringIO):
    """A stderr that says it is a terminal, where progress bars are drawn (tqdm draws none into
    a pipe or pytest's capture): what a user at a terminal would see is in ``getvalue()``."""

    def isatty(self) -> bool:
        return True


def run_cli(argv: Sequence[str], cwd: Path | None = None) -> tuple[int, str]:
    """``wae`` with ``argv``, run in ``cwd`` (default: here): (exit code, what it wrote to stderr)."""
    from wae.cli import main

    err = io.StringIO()
    here = os.getcwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main(list(argv))
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        os.chdir(here)
    return code, err.getvalue()


def kill_at_a_revisions_record(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """``wae.train._append_jsonl`` made to raise KeyboardInterrupt at a budget revision's plan
    record, which a revision writes after its config.json (a kill between the two writes);
    returns the real function, to put back."""
    import wae.train as train

    real = train._append_jsonl

    def killed_at_the_revision(path: Path, record: dict, **how: Any) -> None:
        if record.get("revised"):
            raise KeyboardInterrupt
        real(path, record, **how)

    monkeypatch.setattr(train, "_append_jsonl", killed_at_the_revision)
    return real


def terminal_signals(ignore_sigint: bool = False) -> Callable[[], None]:
    """A ``preexec_fn`` for a ``wae`` subprocess that a test stops with signals: SIGHUP, SIGINT
    and SIGTERM as a terminal's process has them, whatever this suite runs under (``nohup``
    ignores SIGHUP and a non-interactive shell's background job SIGINT; the command rightly
    keeps an ignored signal ignored); ``ignore_sigint`` ignores SIGINT as such a job would."""

    def reset() -> None:
        for name in ("SIGHUP", "SIGTERM", "SIGINT"):
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), signal.SIG_DFL)
        if ignore_sigint:
            signal.signal(signal.SIGINT, signal.SIG_IGN)

    return reset


def rendered_markdown(source: str) -> str:
    """The text of the Markdown ``source`` as CommonMark with GitHub's tables and strikethrough
    renders it (markdown-it-py): its HTML tags removed, its entities decoded."""
    import html
    import re

    from markdown_it import MarkdownIt

    page = MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(source)
    return html.unescape(re.sub(r"<[^>]+>", "", page)).strip("\n")
