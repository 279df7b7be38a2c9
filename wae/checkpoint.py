"""Checkpoints: written atomically (temp file, fsync, rename), read with ``weights_only=True``
so that a crafted file cannot run code. The config is stored inside as plain data.

A run folder keeps its last few checkpoints as ``checkpoints/step-00001200.pt``; resuming takes
the newest one that reads, and says which newer ones it had to pass over.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import math
import os
import re
import signal
import stat
import warnings
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import (
    MAX_IMAGE_SIDE,
    NOT_REGULAR,
    SECTIONS,
    Config,
    FileFault,
    UserError,
    check_written_values,
    failure_reason,
    file_text,
    first_few,
    json_repr,
    parse_json,
    validate,
)

FORMAT = 1
FOLDER = "checkpoints"
RECORDS = "metrics.jsonl"  # a run's training and evaluation records, one JSON object a line
CONFIG = "config.json"  # the settings of a run or an export
GRIDS = "grids"  # a run's per-evaluation grids, epoch_grid(...)
EPOCH_GRIDS = ("samples", "reconstructions", "interpolations", "classes")  # drawn at each evaluation


def epoch_grid(run: Path, name: str, epoch: int) -> Path:
    """Where a run keeps the grid ``name`` (samples, reconstructions, ...) drawn at the
    evaluation that ended ``epoch``: ``RUN/grids/NAME-epochNNN.png``."""
    return run / GRIDS / f"{name}-epoch{epoch:03d}.png"


_NAME = re.compile(r"step-([0-9]+)\.pt")  # ASCII digits: int() also reads other scripts' digits
# temporary files of a writer: write_atomic's ".NAME.tmp-PID", the image-folder cache's
# ".NAME.PID.tmp" and ".NAME.PID.final.tmp"
_TEMPORARY = re.compile(r"\..+\.(?:tmp-(\d+)|(\d+)(?:\.final)?\.tmp)")

# Fault injection for the crash tests: WAE_FAULT="NAME:K" kills this process with SIGKILL the
# K-th time the point NAME is reached ("step": after a training step, "checkpoint-write": half
# way through writing a checkpoint, "checkpoint-saved": just after one is in place).
_FAULT = os.environ.get("WAE_FAULT", "")
_fault_counts: dict[str, int] = {}


def fault_point(name: str) -> None:
    """Die here if WAE_FAULT names this point and its count is reached (a no-op otherwise)."""
    if not _FAULT:
        return
    _fault_counts[name] = _fault_counts.get(name, 0) + 1
    if _FAULT == f"{name}:{_fault_counts[name]}":
        os.kill(os.getpid(), signal.SIGKILL)


def write_config(folder: Path, cfg: Config) -> None:
    """``cfg`` as ``folder``/config.json: indented JSON, written atomically (:func:`write_atomic`)."""
    write_atomic(Path(folder) / CONFIG, json.dumps(cfg.to_dict(), indent=2) + "\n")


def make_folder(folder: Path) -> None:
    """``folder`` made if missing (a run's checkpoints/ or grids/), not in a run folder removed
    or replaced under this process (:func:`wae.runs.check_writing`)."""
    from .runs import check_writing  # runs imports this module

    check_writing(folder)
    folder.mkdir(exist_ok=True)


def hold_folder(folder: Path) -> tuple[int | None, Path]:
    """A descriptor of ``folder`` and a path that stays with the folder it opened: on Linux
    ``/proc/self/fd/N``, so that what is written through it goes on into this folder when its
    name is swapped meanwhile for a link into another run (the caller closes the descriptor);
    elsewhere no descriptor and the folder's own path."""
    if not os.path.isdir("/proc/self/fd"):
        return None, Path(folder)
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    return fd, Path(f"/proc/self/fd/{fd}")


def named_after(err: OSError, held: Path | str, folder: Path, unnamed: str | None = None) -> OSError:
    """``err`` with its file named in ``folder`` where it was opened through ``held``
    (:func:`hold_folder`'s path; its name as bytes too), or ``unnamed`` where it names no file;
    ``err`` itself otherwise."""
    name, held = (os.fsdecode(err.filename) if err.filename is not None else ""), str(held)
    if name == held or name.startswith(f"{held}/"):  # not /proc/self/fd/57 for 5
        return OSError(err.errno, err.strerror, str(folder) + name[len(held) :])
    return OSError(err.errno, err.strerror, unnamed) if not name and unnamed is not None else err


@contextlib.contextmanager
def held_folder(folder: Path, check: Callable[[], None] = lambda: None) -> Iterator[Path]:
    """:func:`hold_folder` for the writes of a block: ``check`` (the run folder's entries) runs
    once the folder is held, so that a swap before it is refused and one after it leads nowhere;
    an OSError of the block names ``folder``, not the descriptor's path."""
    fd, held = hold_folder(folder)
    try:
        check()
        yield held
    except OSError as err:
        if (named := named_after(err, held, folder)) is err:
            raise
        raise named from None
    finally:
        if fd is not None:
            os.close(fd)


def remove_partial(out: Path, created: bool, written: Iterable[Path]) -> None:
    """After a command that writes several files into ``out`` failed or was interrupted: the
    files ``written`` (those it began), and ``out`` when the command ``created`` it and it is
    left empty, so that no half set of outputs, and no empty folder, is left."""
    for path in written:
        path.unlink(missing_ok=True)
    if created and out.is_dir() and not any(out.iterdir()):
        out.rmdir()


def write_atomic(
    path: Path, data: bytes | bytearray | memoryview | str | Iterable[bytes], fault: str | None = None
) -> None:
    """Write ``data`` (text is UTF-8 encoded; the undecodable bytes of a file name that is not
    UTF-8, which the text may quote, as backslash escapes; or chunks of bytes, as they come) to
    ``path`` so that ``path`` is always either the old or the new file: a temporary file beside
    it, flushed to disk, renamed over it; the temporary file does not outlive a failure.
    ``fault`` names a fault point half way through the write (for the crash tests). A file
    replaced keeps its permission bits (a read-only file stays read-only) and, where the system
    allows, its owner and group. OSError passes through, naming ``path``; :class:`UserError`
    when ``path`` is in a run folder this process holds that was removed or replaced meanwhile
    (:func:`wae.runs.check_writing`)."""
    from .runs import check_writing  # runs imports this module

    path = Path(path)
    if isinstance(data, bytes | bytearray | memoryview | str):
        raw = memoryview(data.encode("utf-8", "backslashreplace") if isinstance(data, str) else data)
        chunks: Iterable[bytes | memoryview] = (raw[: len(raw) // 2], raw[len(raw) // 2 :])
    else:
        chunks = data  # written as they come: a file larger than memory is never held whole
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    check_writing(path)  # nothing into a run folder removed or replaced under this process
    sweep_stale(path.parent, path.name)
    try:
        old = os.stat(path) if path.is_file() else None
        with open(tmp, "wb") as f:
            for number, chunk in enumerate(chunks):
                if number == 1 and fault is not None:
                    fault_point(fault)  # half way through
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        if old is not None:
            _keep_owner(tmp, old)
            os.chmod(tmp, stat.S_IMODE(old.st_mode))
        check_writing(path)  # again, just before the file is put in place
        os.replace(tmp, path)
    except OSError as err:  # named after the file meant, not the temporary one
        check_writing(path)  # a folder gone meanwhile (a link re-pointed, say) is said as such
        raise OSError(err.errno, err.strerror, str(path)) from None
    finally:
        if tmp.exists():
            tmp.unlink()


def _keep_owner(tmp: Path, old: os.stat_result) -> None:
    """The owner and group of the file replaced given to its replacement where the system
    allows it (root, or a group the writer is in); left as they are otherwise."""
    if (old.st_uid, old.st_gid) == (os.geteuid(), os.getegid()):
        return
    for uid, gid in ((old.st_uid, old.st_gid), (-1, old.st_gid)):
        try:
            os.chown(tmp, uid, gid)
            return
        except OSError:  # EPERM; EINVAL for an owner unmapped in a user namespace; no chown at all
            continue


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def sweep_stale(folder: Path, name: str | None = None) -> None:
    """Remove the temporary files (of the file ``name``, or of any) that writers killed while
    writing left in ``folder``; those of living processes stay."""
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return
    for entry in entries:
        match = _TEMPORARY.fullmatch(entry.name)
        if match is None or (name is not None and not entry.name.startswith(f".{name}.")):
            continue
        if not _alive(int(match.group(1) or match.group(2))):
            try:
                entry.unlink()
            except OSError:
                pass


def npz_bytes(**arrays: Any) -> bytes:
    """The bytes of an ``.npz`` file holding ``arrays`` (for :func:`write_atomic`)."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


DAMAGED = "damaged"  # what fingerprint_entry says of an entry that is not a fingerprint


def read_json_object(path: Path) -> dict[str, Any] | None:
    """The JSON object in the file ``path`` (repeated keys: the last wins, as ``json``); None
    when it is not a regular file (a FIFO would block), cannot be read, is not UTF-8 JSON or
    holds another value than an object."""
    try:
        loaded = parse_json(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):  # ValueError: not JSON, or bytes that are not UTF-8
        return None
    return loaded if isinstance(loaded, dict) else None


def fingerprint_entry(evaluation: dict[str, Any]) -> str | None:
    """The weights' fingerprint that a parsed ``metrics*.json`` of ``wae evaluate`` records: the
    entry when it is one (FINGERPRINT_LENGTH lower-case hex digits), DAMAGED (which matches no
    weights) for an entry of another type or form, None without the entry (a file written
    before fingerprints)."""
    if "weights_fingerprint" not in evaluation:
        return None
    value = evaluation["weights_fingerprint"]
    return value if is_fingerprint(value) else DAMAGED


def is_fingerprint(value: object) -> bool:
    """Whether ``value`` is what :func:`weights_fingerprint` writes: FINGERPRINT_LENGTH
    lower-case hex digits (sampler files and metrics files check their entries with it)."""
    return isinstance(value, str) and len(value) == FINGERPRINT_LENGTH and all(c in "0123456789abcdef" for c in value)


def evaluation_of(path: Path) -> dict[str, Any] | None:
    """The parsed metrics file ``path`` when ``wae evaluate`` wrote it (a JSON object with the
    weights' fingerprint, or, from before fingerprints, the test reconstruction error); None
    for anything else: a file of the user's that happens to be called metrics-*.json, a folder,
    a file that cannot be read. This is the rule for what training may remove and evaluate may
    replace; readers take any JSON object and judge it by its fingerprint,
    :func:`wae.report.read_evaluation`."""
    loaded = read_json_object(path)
    return loaded if loaded is not None and ("weights_fingerprint" in loaded or "test_recon_mse" in loaded) else None


def is_evaluation(path: Path) -> bool:
    """Whether ``path`` is a metrics file that ``wae evaluate`` wrote (:func:`evaluation_of`)."""
    return evaluation_of(path) is not None


FINGERPRINT_LENGTH = 16  # hex digits of weights_fingerprint


def weights_fingerprint(module: torch.nn.Module) -> str:
    """A short hex digest (16 characters) of a module's state: every entry's name, dtype, shape
    and values, whatever its device or memory layout. Derived files (an ex-post sampler fitted
    to the codes) record it, so that one made from other weights than the run's checkpoint is
    found out (wae/samplers.py, :func:`~wae.samplers.load_sampler`)."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{flat.dtype}|{tuple(tensor.shape)}\n".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:FINGERPRINT_LENGTH]


# zlib's level for the PNGs this package writes (figures, image grids): the fastest. The report's
# latent figure (d_z = 16) encodes in 0.18 s instead of 0.29 at Pillow's default level 6, for a
# file 13 % larger; a grid of 100 MNIST digits at scale 2 in 3.7 ms instead of 6.1, 27 % larger
PNG_LEVEL = 1


def figure_bytes(fig: Any, **savefig: Any) -> bytes:
    """The PNG bytes of a matplotlib figure (for :func:`write_atomic`)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", pil_kwargs={"compress_level": PNG_LEVEL}, **savefig)
    return buffer.getvalue()


def save_atomic(payload: dict[str, Any], path: Path) -> None:
    """Write ``payload`` to ``path`` so that ``path`` is always either the old or the new file,
    and the rename itself is on disk."""
    path = Path(path)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_atomic(path, buffer.getbuffer(), fault="checkpoint-write")
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


NOT_TORCH = (
    "not a file that torch.save wrote: another kind of file, or one holding Python objects, which are never loaded"
)


def load_tensors(path: str | Path) -> Any:
    """``torch.load`` of ``path`` to the CPU with ``weights_only`` (tensors and plain values; no
    code runs), its warnings on a file not written by ``torch.save`` (an older pickle protocol)
    silenced: the refusal that follows says what is wrong, on one line."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except OSError:
            raise
        except Exception as err:  # torch's words name its own internals: KeyError 101, "inline_container.cc"
            known = isinstance(err, (EOFError, zipfile.BadZipFile)) or "central directory" in str(err)
            raise FileFault(failure_reason(err) if known else NOT_TORCH) from None


def load(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_atomic`; a clear :class:`UserError` otherwise."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no checkpoint at {path}")
    try:
        payload = load_tensors(path)
    except Exception as err:  # any unpickling failure means the file is not ours or is damaged
        raise UserError(f"checkpoint {path} is corrupt or not a wae checkpoint ({failure_reason(err)})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UserError(f"checkpoint {path} is not a wae checkpoint of format {FORMAT}")
    return payload


def stored_config(loaded: Any, source: str | Path) -> Config:
    """A config as a file stored it (JSON's values: a run's or an export's config.json, a
    checkpoint's copy, an export's metadata), checked as flags are: types, choices, ranges and
    settings that go together. A :class:`UserError` begins with ``source`` (the file) and names
    the value as JSON writes it (``got true``)."""
    try:
        if isinstance(loaded, dict) and (missing := [name for name in SECTIONS if name not in loaded]):
            # wae writes all four: defaults in their place would be named as the file's values
            raise UserError(f"config has no {missing[0]} section (a stored config holds {', '.join(SECTIONS)})")
        cfg = Config.from_dict(loaded)
        check_written_values(loaded, file_text)  # "lam": -1 named as -1, not as the float -1.0
        validate(cfg, file_text)
    except UserError as err:
        raise UserError(f"{source}: {err}") from None
    return cfg


def has_config(folder: Path) -> bool:
    """Whether ``folder`` holds an entry named config.json: a file, or what is not one (a folder, a
    FIFO, a link that leads nowhere), which :func:`read_config_json` then refuses by name rather
    than the folder being read as holding none."""
    return os.path.lexists(Path(folder) / CONFIG)


def check_run_folder(run: Path) -> None:
    """:class:`UserError` unless ``run`` holds a config.json (:func:`has_config`): a command
    given a folder that is no run."""
    if not has_config(run):
        raise UserError(f"{run} is not a run folder (no config.json)")


def read_config_json(path: str | Path) -> tuple[dict[str, Any], Config]:
    """The config file ``path`` (a run's or an export's config.json) as its JSON object and as
    the :class:`Config` it holds (:func:`stored_config`). A one-line :class:`UserError` naming
    the file and why for one that cannot be read (missing, a folder, a FIFO, permissions), is
    not UTF-8, is not JSON, holds a key twice (wae writes each once: a hand edit, whose values
    json would take the last of), a number no reader takes, or nesting too deep to parse, or is
    not a valid config."""
    if not isinstance(path, (str, os.PathLike)):
        raise UserError(f"a config file must be a path; got {type(path).__name__}")
    path = Path(path)
    try:
        if not path.is_file():  # a FIFO would block, a folder raise IsADirectoryError
            raise FileNotFoundError(errno.ENOENT, "not a file")
        loaded = parse_json(path.read_text(), unique_keys=True)
    except OSError as err:
        raise UserError(f"{path} cannot be read ({failure_reason(err)})") from None
    except ValueError as err:  # not UTF-8, not JSON, or parse_json's own words
        raise UserError(f"{path} is damaged ({failure_reason(err)})") from None
    return loaded, stored_config(loaded, path)


def config_of(payload: dict[str, Any], path: str | Path = "checkpoint") -> Config:
    """The run's config stored inside a checkpoint read from ``path`` (:func:`stored_config`:
    a refusal names ``path``)."""
    if "config" not in payload:
        raise UserError(f"{path} holds no config (a wae checkpoint holds its run's)")
    return stored_config(payload["config"], path)


def image_shape_of(payload: dict[str, Any]) -> tuple[int, int]:
    """(channels, side) of the images a checkpoint's model was built for ((columns, 1) for a
    table); :class:`UserError` when they are not 1 or 3 channels and a side in
    [1, MAX_IMAGE_SIDE] (a crafted file)."""
    data = payload.get("data")
    channels = data.get("channels") if isinstance(data, dict) else None
    size = data.get("size") if isinstance(data, dict) else None
    if isinstance(data, dict) and "table" in data:  # rows of a table: D columns, "side" 1
        if type(channels) is not int or not 1 <= channels <= 65536 or size != 1:
            raise UserError(f"checkpoint data of a table must have 1 to 65536 columns; got {json_repr(channels)}")
        return channels, size
    if type(channels) is not int or channels not in (1, 3):
        raise UserError(f"checkpoint data.channels must be 1 or 3; got {json_repr(channels)}")
    if type(size) is not int or not 1 <= size <= MAX_IMAGE_SIDE:
        raise UserError(f"checkpoint data.size must be a whole number in [1, {MAX_IMAGE_SIDE}]; got {json_repr(size)}")
    return channels, size


MAX_CLASSES = 100_000  # as data.MAX_CLASSES


def class_names_of(payload: dict[str, Any], cfg: Config) -> tuple[str, ...]:
    """The class names a conditional run's checkpoint records, in label order (() for an
    unconditional run); :class:`UserError` when they are missing or malformed (a crafted file):
    ``data.classes`` must count ``data.class_names``, at least 2 distinct strings."""
    if cfg.data.condition != "labels":
        return ()
    data = payload.get("data")
    names = data.get("class_names") if isinstance(data, dict) else None
    count = data.get("classes") if isinstance(data, dict) else None
    if (
        not isinstance(names, list)
        or not 2 <= len(names) <= MAX_CLASSES
        or not all(isinstance(n, str) for n in names)
        or len(set(names)) != len(names)
        or count != len(names)
    ):
        raise UserError(
            f"checkpoint of a conditional run must record data.classes and as many distinct data.class_names "
            f"(at least 2); got {json_repr(count)} and {json_repr(names)}"
        )
    return tuple(names)


def _checkpoint_names(run_dir: Path, folder: Path | None = None) -> list[tuple[int, Path]]:
    """(step, path) of every entry in a run's checkpoint folder (``folder``, when given, in place
    of ``run_dir``'s) named as a checkpoint, file or not."""
    folder = Path(run_dir) / FOLDER if folder is None else folder
    if not folder.is_dir():
        return []
    return [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.fullmatch(p.name))]


def _checkpoints_by_step(run_dir: Path, folder: Path | None = None) -> list[tuple[int, Path]]:
    # files only: a folder or a dangling link of that name is no checkpoint (pruning one failed)
    return sorted(((step, p) for step, p in _checkpoint_names(run_dir, folder) if p.is_file()), reverse=True)


def step_of_name(path: Path) -> int | None:
    """The step in a checkpoint's file name (``step-00000012.pt``: 12); None for another name."""
    found = _NAME.fullmatch(Path(path).name)
    return int(found.group(1)) if found else None


def run_checkpoints(run_dir: Path) -> list[Path]:
    """The checkpoint files of a run folder, newest (highest step) first."""
    return [p for _, p in _checkpoints_by_step(run_dir)]


def newest_checkpoint_step(run_dir: Path) -> int | None:
    """The step of a run's newest checkpoint, read from its file name (nothing is loaded); None
    when the run has none."""
    found = _checkpoints_by_step(run_dir)
    return found[0][0] if found else None


def save_run_checkpoint(
    run_dir: Path, payload: dict[str, Any], keep: int, check: Callable[[], None] = lambda: None
) -> Path:
    """Save ``payload`` as the run's newest checkpoint and delete all but the ``keep`` newest,
    all in the checkpoints folder as it is when ``check`` (of the run folder's entries) passes:
    its name swapped meanwhile for a link into another run leads neither the save nor the pruning
    there (:func:`held_folder`; the pruning once deleted another run's checkpoints)."""
    folder = Path(run_dir) / FOLDER
    make_folder(folder)
    name = f"step-{payload['step']:08d}.pt"
    with held_folder(folder, check) as held:
        for stale in held.glob(".*.tmp-*"):  # left by a process killed while writing
            stale.unlink()
        save_atomic(payload, held / name)
        fault_point("checkpoint-saved")
        for _, old in _checkpoints_by_step(run_dir, held)[keep:]:
            old.unlink()
    return folder / name


def load_latest(
    run_dir: Path, warn: Callable[[str], None] | None = None, using: str = "resuming from"
) -> tuple[dict[str, Any], Path] | None:
    """The newest checkpoint of a run that reads, with its path; None when the run has none.

    Damaged newer ones are passed over with a warning naming them ("...; ``using`` PATH
    instead"); if every one is damaged the error names them all."""
    paths = run_checkpoints(run_dir)
    problems = []
    for path in paths:
        try:
            payload = load(path)
        except UserError as err:
            problems.append(str(err))
            continue
        if problems and warn is not None:
            warn(f"warning: {'; '.join(problems)}; {using} {path} instead")
        return payload, path
    odd = sorted(p for _, p in _checkpoint_names(run_dir) if not p.is_file())
    # a name of a checkpoint that is not a file, and none that reads: not "no checkpoint yet",
    # which a resume would take to start the run afresh over its records
    problems += [f"{p} {NOT_REGULAR}" for p in odd]
    if problems:
        raise UserError("no readable checkpoint: " + first_few(problems, "; "))
    return None


def json_text(value: Any, indent: int | None = None) -> str:
    """``value`` as strict JSON: a NaN or infinite number (a figure that a tiny test split cannot
    define) is written as null, not as the bare NaN that JSON readers other than Python's refuse."""

    def finite(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: finite(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [finite(x) for x in v]
        return v

    return json.dumps(finite(value), indent=indent, allow_nan=False)
