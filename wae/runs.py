"""The run folder as a shared record: one writer at a time (a lock file), the data it was
trained on (absolute path and fingerprint), its checkpoints checked against its
``config.json``, and what a signal means to a command.

Writers (``wae train``, ``fit-sampler``, ``evaluate`` and ``report`` into the run, the Python
:func:`wae.fit`) hold ``RUN/.lock`` with ``flock``; a second writer is refused at once with the
first one's pid. Readers take no lock. The lock file is removed by its holder on release; a
writer that finds the file it locked replaced or gone tries again, so two writers never hold
two different lock files of one folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import json
import os
import re
import signal
import stat
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, Literal, overload

import torch

from .checkpoint import (
    CONFIG,
    EPOCH_GRIDS,
    FOLDER,
    GRIDS,
    RECORDS,
    check_run_folder,
    config_of,
    has_config,
    load_latest,
    read_config_json,
    sweep_stale,
)
from .checkpoint import load as load_checkpoint
from .config import (
    NOT_REGULAR,
    Config,
    DataConfig,
    UserError,
    about,
    differing_settings,
    first_few,
    setting_text,
    settings,
    warn_caller,
)
from .samplers import SAMPLER_FILES
from .tracking import FOLDERS as TRACKER_FOLDERS
from .tracking import names_of as tracker_names

LOCK = ".lock"
_FOLDER_HANDLE = getattr(os, "O_PATH", os.O_RDONLY)  # Linux: no read permission needed; elsewhere O_RDONLY


# the settings a resumed session may be given (the flags --resume allows): those declared with
# resume=True (wae/config.py, the one description of every setting)
RESUME_SETTINGS = frozenset(f.name for _, f, _, _ in settings() if about(f)["resume"])
# those in which a checkpoint and config.json may differ: the same, and the data path (a moved
# data file is found by its fingerprint). Setting names are unique across sections. (A budget's
# lr_scale of 1 in a checkpoint is no difference either: config_differences.)
RESUMABLE = RESUME_SETTINGS | {"path"}

_held: dict[Path, int] = {}  # run folders this process holds the lock of -> nesting depth
_lock_files: dict[Path, int] = {}  # the same -> the open descriptor of the lock file it holds
_given: dict[Path, Path] = {}  # the same -> the folder as the caller named it, absolute (links kept)
_folder_fds: dict[Path, int] = {}  # the same -> an open descriptor of the folder itself (its inode kept)


class Interrupted(KeyboardInterrupt):
    """A signal (SIGINT or SIGTERM) that stops a command at once."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _acquire(folder: Path) -> int:
    """An open descriptor of ``folder``/.lock holding its exclusive flock, the pid written in."""
    path = folder / LOCK
    while True:
        # never through a link (it would truncate the file it points to), never blocking on a FIFO
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
        except OSError as err:
            if err.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO):
                raise UserError(f"{path} is not a plain lock file (a link, folder or FIFO); remove it") from None
            raise
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise UserError(f"{path} is not a plain lock file (a link, folder or FIFO); remove it")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise UserError(  # no kill N: the holder may be another host's or container's process
                f"{folder} is in use by another wae process (pid {holder}): wait for it to end, or stop that "
                "process, then run this again"
            ) from None
        held = os.fstat(fd)
        try:
            same = os.lstat(path).st_ino == held.st_ino
        except FileNotFoundError:
            same = False
        links = held.st_nlink
        if same and links > 1:  # a hard link to a file elsewhere: writing the pid would overwrite it
            os.close(fd)
            raise UserError(f"{path} is a hard link to another file ({links} names, no writer holds it); remove it")
        if same:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            return fd
        os.close(fd)  # the holder released and removed it between our open and flock: again


@contextlib.contextmanager
def run_lock(run_dir: str | Path) -> Iterator[None]:
    """Hold the run folder's writer lock for the duration (made if missing; nested use in one
    process is fine). :class:`UserError` when another process holds it or the folder cannot be
    written. Stale temporary files of killed writers in the folder are removed on entry."""
    folder = Path(run_dir)
    key = folder.resolve()
    if key in _held:
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder} exists and is not a folder")
    if folder.is_symlink() and not folder.exists():
        target = os.readlink(folder)
        raise UserError(f"{folder} is a link to {target}, which does not exist; make it or give another path")
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        folder_fd = os.open(folder, _FOLDER_HANDLE | os.O_DIRECTORY)  # held open: its inode is not reused
    except OSError as err:
        if created:
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise UserError(f"cannot write the run folder {folder}: {err.strerror}") from None
    try:
        fd = _acquire(folder)
    except OSError as err:
        os.close(folder_fd)
        raise UserError(f"cannot write the run folder {folder}: {err.strerror}") from None
    except BaseException:
        os.close(folder_fd)
        raise
    _held[key], _lock_files[key], _given[key] = 1, fd, folder.absolute()  # ".." kept: the system takes it after links
    _folder_fds[key] = folder_fd
    try:
        for sub in (folder, folder / FOLDER, folder / GRIDS):
            sweep_stale(sub)
        yield
    finally:
        del _held[key], _lock_files[key], _given[key], _folder_fds[key]
        if _holds(folder, fd):  # not another writer's, in a folder made again at this path
            with contextlib.suppress(OSError):
                os.unlink(folder / LOCK)
        os.close(fd)
        same = _same_folder(folder, folder_fd)
        os.close(folder_fd)
        if created and same:  # not a folder made again at the path by someone else
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if it stayed empty


def _same_folder(folder: Path, fd: int) -> bool:
    """Whether the folder at ``folder`` now (through links) is the one open as ``fd``."""
    try:
        now, held = os.stat(folder), os.fstat(fd)
    except OSError:
        return False
    return (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino)


def _holds(folder: Path, fd: int) -> bool:
    """Whether ``folder``/.lock is still the file open as ``fd`` (not removed, nor made again)."""
    try:
        now, held = os.lstat(folder / LOCK), os.fstat(fd)
    except OSError:
        return False
    return (now.st_ino, now.st_dev) == (held.st_ino, held.st_dev)


def check_held(run_dir: str | Path) -> None:
    """:class:`UserError` when the run folder whose lock this process holds was removed, moved
    or replaced since it took the lock (``rm -rf RUN`` under a running ``wae train``, perhaps with
    a new run started at the same path; a link given as the folder pointed elsewhere), or its lock
    file was removed: what it would write next belongs to no run of its own, or a second writer
    could now start. A no-op for a folder this process does not hold."""
    check_writing(run_dir)


def _lost(key: Path) -> str:
    """What became of the held run folder ``key`` whose lock file is no longer the one held."""
    given = _given[key]
    if _same_folder(given, _folder_fds[key]):
        what = f"its lock file {given / LOCK} was removed or replaced while this process wrote the run"
    else:
        what = f"the run folder {given} was removed, moved or replaced while this process wrote into it"
    return f"{what}; stopped without writing there again"


def check_writing(path: str | Path) -> None:
    """:class:`UserError` when ``path`` (a run folder, or a file or folder in one) lies in a
    run folder this process holds the lock of, by the name it was given (links kept: a link
    re-pointed elsewhere is caught) or its real path, and that folder was removed, moved or
    replaced, or its lock file removed (:func:`check_held`). Called by wae's own writers
    (:func:`wae.checkpoint.write_atomic` and ``make_folder``, the records' appends; not the
    trackers' libraries) before a file is put in place:
    a checkpoint, a grid, a record or a report of a folder replaced meanwhile is not written
    into the new one. A no-op for a path in no folder this process holds."""
    if not _lock_files:
        return
    target = Path(path).absolute()  # not abspath: "link/.." is not the folder that holds the link
    for key, fd in list(_lock_files.items()):
        given = _given[key]
        if (target.is_relative_to(given) or target.is_relative_to(key)) and not _holds(given, fd):
            raise UserError(_lost(key))


def has_contents(run_dir: Path) -> bool:
    """Whether the folder holds anything but its lock file."""
    return run_dir.is_dir() and any(p.name != LOCK for p in run_dir.iterdir())


# What a run folder is made of: the exact names that wae train, fit-sampler, evaluate and report
# write into it, and the temporary files of those (".NAME.tmp-PID"); in its folders checkpoints/
# and grids/ only wae's own file names, in tensorboard/ only event files, and in wandb/ and
# mlruns/ only the names those trackers make at their top level (what lies deeper is theirs).
# ``--overwrite`` replaces only a folder of these: anything else in it might be the user's own.
RUN_FILES = frozenset(
    {"config.json", "metrics.jsonl", LOCK, ".write-test", "report.md", "report.html", "metrics.json"}
    | {f"{grid}.png" for grid in EPOCH_GRIDS}
    | {f"samples-{kind}.png" for kind in SAMPLER_FILES}
    | {f"metrics-{kind}.json" for kind in SAMPLER_FILES}
    | set(SAMPLER_FILES.values())
)
_GRID_NAMES = "|".join(EPOCH_GRIDS)
_FILE, _LINK, _FOLDER = "a file", "a link", "a folder"  # the kinds of entry wae makes
_FILES = frozenset({_FILE, _LINK})  # a link is removed, never what it points to
_FOLDERS = frozenset({_FOLDER})
RUN_FOLDERS: dict[str, tuple[tuple[re.Pattern[str], frozenset[str]], ...]] = {  # name -> its entries
    FOLDER: ((re.compile(r"step-[0-9]+\.pt"), _FILES),),
    GRIDS: ((re.compile(rf"(?:{_GRID_NAMES})-epoch[0-9]{{3,}}\.png"), _FILES),),
    TRACKER_FOLDERS["tensorboard"]: ((re.compile(r"events\.out\.tfevents\.[^/]+"), _FILES),),
    TRACKER_FOLDERS["wandb"]: (
        (re.compile(r"(?:offline-)?run-[0-9]{8}_[0-9]{6}-[\w-]+"), _FOLDERS),
        (re.compile(r"latest-run"), frozenset({_LINK})),
        (re.compile(r"debug(?:-internal|-cli\.[\w.-]+)?\.log"), _FILES),
    ),
    TRACKER_FOLDERS["mlflow"]: ((re.compile(r"[0-9]+|\.trash|models"), _FOLDERS),),
}
_TEMPORARY_OF = re.compile(r"\.(.+)\.tmp-[0-9]+")


def shown_name(name: str) -> str:
    """A file name as a message shows it, on one line: the bytes of a name that is not UTF-8
    as ``\\xNN``, control characters (a line break) escaped."""
    out = []
    for char in name:
        if 0xDC80 <= ord(char) <= 0xDCFF:  # an undecodable byte (surrogateescape)
            out.append(f"\\x{ord(char) - 0xDC00:02x}")
        else:
            out.append(char if char.isprintable() else char.encode("unicode_escape").decode("ascii"))
    return "".join(out)


def _kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISREG, _FILE),
        (stat.S_ISLNK, _LINK),
        (stat.S_ISDIR, _FOLDER),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return "a device"


def _top_kinds(name: str) -> frozenset[str] | None:
    """The kinds an entry of this name at the top of a run folder may be (None: not wae's name)."""
    return _FILES if name in RUN_FILES else _FOLDERS if name in RUN_FOLDERS else None


def _kinds_in(folder: str) -> Callable[[str], frozenset[str] | None]:
    def kinds(name: str) -> frozenset[str] | None:
        return next((kinds for pattern, kinds in RUN_FOLDERS[folder] if pattern.fullmatch(name)), None)

    return kinds


def _foreign(entry: Path, kinds_of: Callable[[str], frozenset[str] | None]) -> str | None:
    """None when ``entry`` is one that wae writes: a name ``kinds_of`` knows, of a kind it allows
    (or a temporary file of such a name); otherwise its name as shown, with its kind where the
    name is wae's and the kind is not (a FIFO named metrics.jsonl)."""
    try:
        kind = _kind(entry.lstat().st_mode)
    except OSError:  # gone meanwhile: nothing to remove
        return None
    temporary = _TEMPORARY_OF.fullmatch(entry.name)
    allowed = _FILES - {_LINK} if temporary is not None and kinds_of(temporary.group(1)) else kinds_of(entry.name)
    if allowed is None:
        return shown_name(entry.name)
    return None if kind in allowed else f"{shown_name(entry.name)} ({kind})"


def foreign_entries(run_dir: Path) -> list[str]:
    """The paths in ``run_dir`` (relative to it, sorted, as messages show them) that no wae
    command writes there: any name but :data:`RUN_FILES` and :data:`RUN_FOLDERS` at the top, and
    in those folders any name but wae's and its trackers' own (a user's
    ``checkpoints/best-keep.pt``, ``grids/figure.png`` or ``tensorboard/other-experiment/``); and
    wae's names on another kind of entry (a folder named samples.png, a FIFO named
    metrics.jsonl, a link named checkpoints), with that kind."""
    foreign = []
    for entry in run_dir.iterdir():
        if entry.name in RUN_FOLDERS and stat.S_ISDIR(entry.lstat().st_mode):
            try:
                inside = list(entry.iterdir())
            except OSError:  # unreadable: not known to hold only ours
                foreign.append(f"{entry.name}/ (unreadable)")
                continue
            kinds_of = _kinds_in(entry.name)
            foreign += [f"{entry.name}/{shown}" for sub in inside if (shown := _foreign(sub, kinds_of)) is not None]
        elif (shown := _foreign(entry, _top_kinds)) is not None:
            foreign.append(shown)
    return sorted(foreign)


# the entries wae writes through (appends, files put into a folder) rather than replaces whole:
# each must lie in the run folder, where the run's lock covers it
_WRITTEN_THROUGH = frozenset(RUN_FOLDERS) | {RECORDS}


def entry_problem(run_dir: Path, name: str, real_run: str | None = None) -> str | None:
    """Why the entry ``name`` at the top of the run folder ``run_dir`` cannot take what wae
    writes there, in words (None when it can, or is not there): a folder of wae's
    (checkpoints/, grids/, a tracker's) that is a file; a file of wae's that is a folder, FIFO,
    socket or device (a link is replaced, not followed); a metrics.jsonl that is no regular file
    nor a link to one (:func:`not_a_records_file`); and an entry written through (those
    folders, metrics.jsonl) that leads into another run or export folder (:func:`_owner`: a run
    nested in this one too), where this run's lock does not reach and whose checkpoints a resume
    would prune (a link to a place of no run, a scratch disk, is written through as before); a
    metrics.jsonl with other names (hard links), which appends reach. ``real_run``: ``run_dir``'s
    real path, when known."""
    entry = run_dir / name
    try:
        own = _kind(entry.lstat().st_mode)
    except OSError:
        return None
    shown = shown_name(str(entry))
    away = "remove it or move it away (mv)"
    if name == RECORDS and not entry.is_file():  # a FIFO there blocked the run; a link to none, to a folder
        return not_a_records_file(shown)
    if name in RUN_FOLDERS and not entry.is_dir():
        what = own if own != _LINK else "a link that leads to no folder"
        return f"{shown} is {what}, not a folder: wae writes the run's {name} there; {away}"
    if name in RUN_FILES and name not in RUN_FOLDERS and own not in _FILES:
        return f"{shown} is {own}, not a file: wae writes the run's {name} there; {away}"
    if name in _WRITTEN_THROUGH:
        real = os.path.realpath(entry)
        home = real_run if real_run is not None else os.path.realpath(run_dir)
        if owner := _owner(Path(real), Path(home)):
            what = "an export's folder" if (owner / "export.json").is_file() else "another run's folder"
            return (
                f"{shown} leads into {what}, {shown_name(str(owner))} ({shown_name(real)}): wae writes "
                f"through it, into that folder, beyond the reach of this run's lock; give this run its own {name} "
                "in place of the link: its own moved back if it was moved away, else a copy of what the link leads to"
            )
    if name == RECORDS and (names := _names_of(entry)) > 1:  # `cp -al` of a run; a link to such a file
        return (
            f"{shown} is one of {names} names of one file (a hard link: a copy made by cp -al?): the records "
            f"appended here would reach the others too; make it a file of its own (cp {shown} {shown}.new && "
            f"mv {shown}.new {shown})"
        )
    return None


def _names_of(path: Path) -> int:
    """How many names (hard links) the file ``path`` leads to has; 1 when it cannot be read."""
    try:
        return path.stat().st_nlink
    except OSError:
        return 1


def not_a_records_file(path: str | Path) -> str:
    """Why the records file ``path`` (metrics.jsonl) cannot take the run's records, in words:
    it is not a regular file, nor a link to one."""
    return f"{path} {NOT_REGULAR}; the run's records go there: remove it"


def _is_wae_folder(folder: Path) -> bool:
    """Whether ``folder`` is a wae run or export: a config.json whose JSON object holds the data,
    model, loss and train sections beside one of wae's own entries (a project's config.json of
    another tool, with a checkpoints/ of its own, is not one)."""
    config = folder / "config.json"
    if not config.is_file() or not any(os.path.lexists(folder / mark) for mark in _RUN_MARKS):
        return False
    try:
        with open(config, "rb") as f:
            text = f.read(1 << 20)
        found = json.loads(text)
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(found, dict) and {"data", "model", "loss", "train"} <= set(found)


# beside config.json, what tells a wae run (or export) folder from a folder of another tool's
_RUN_MARKS = (RECORDS, FOLDER, LOCK, "export.json")


def _owner(real: Path, home: Path) -> Path | None:
    """The wae folder (:func:`_is_wae_folder`) that holds ``real`` (or is it), other than the run
    folder ``home`` (real paths both): the nearest on the way up from ``real``, stopping at
    ``home`` (a run nested in ``home`` is found; ``home``'s own entries are its own)."""
    for folder in (real, *real.parents):
        if folder == home:
            return None
        if _is_wae_folder(folder):
            return folder
    return None


def session_entries(cfg: Config) -> set[str]:
    """The entries at the top of a run folder that a training session with ``cfg`` writes:
    config.json, metrics.jsonl, the reports, the grids and checkpoints/ and grids/; the folder
    of each tracker ``train.log`` names; the sampler file and ``samples-KIND.png`` of the
    ``train.fit_sampler`` kind. Not ``wae evaluate``'s metrics*.json, nor other kinds'
    samplers: a session only reads or removes those."""
    kind = cfg.train.fit_sampler
    return (
        {CONFIG, RECORDS, "report.md", "report.html", FOLDER, GRIDS}
        | {f"{grid}.png" for grid in EPOCH_GRIDS}
        | {TRACKER_FOLDERS[name] for name in tracker_names(cfg.train.log)}
        | ({SAMPLER_FILES[kind], f"samples-{kind}.png"} if kind in SAMPLER_FILES else set())
    )


def check_run_entries(run_dir: str | Path, cfg: Config, then: str = "then run this again") -> None:
    """:class:`UserError` naming the first of the entries in the run folder ``run_dir`` that a
    training session with ``cfg`` writes (:func:`session_entries`) that cannot take what it
    writes (:func:`entry_problem`), before anything is read, trained or written: found after an
    epoch of training, such an entry cost the epoch; a link from checkpoints/ into another run
    folder let a resume prune that run's checkpoints. ``then``: what to do once it is mended,
    the message's end."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return
    real = os.path.realpath(run_dir)
    for name in sorted(session_entries(cfg)):
        if trouble := entry_problem(run_dir, name, real):
            raise UserError(f"{trouble}, {then}")


FS_IOC_GETFLAGS = 0x80086601  # Linux ioctl: an inode's flags (chattr), as lsattr reads them
_UNREMOVABLE_FLAGS = 0x10 | 0x20  # FS_IMMUTABLE_FL, FS_APPEND_FL: neither removed nor emptied


def _flags(path: Path, mode: int) -> int:
    """The inode flags of a regular file or folder (0 where they cannot be read)."""
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        return 0
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_NOCTTY)
    except OSError:
        return 0
    try:
        return int.from_bytes(fcntl.ioctl(fd, FS_IOC_GETFLAGS, bytes(8))[:4], sys.byteorder)
    except OSError:  # a file system without flags
        return 0
    finally:
        os.close(fd)


MAX_DEPTH = 64  # folders below a run folder's top (a tracker's store goes about 6 deep)


def is_immutable(path: Path) -> bool:
    """Whether ``path`` (a file or folder) or the folder that holds it is immutable or
    append-only (``chattr +i`` / ``+a``): what makes root's writes fail with EPERM."""
    for each in (path, path.parent):
        try:
            if _flags(each, each.lstat().st_mode) & _UNREMOVABLE_FLAGS:
                return True
        except OSError:
            continue
    return False


def _unremovable(folder: Path, entries: list[Path]) -> str | None:
    """Why ``entries`` of ``folder`` (and everything in those that are folders) could not all be
    removed, naming the first path that would stop it (immutable or append-only, a folder
    that cannot be listed or changed, another user's file in a sticky folder, a tree deeper than
    :data:`MAX_DEPTH`, which no run reaches; far deeper trees overflow the recursive
    ``shutil.rmtree``); None if nothing is seen to stop it. Checked before anything is
    removed, so that a refusal removes nothing."""
    euid = os.geteuid()
    todo = [(folder, entries, 0)]
    while todo:
        parent, children, depth = todo.pop()
        if depth > MAX_DEPTH:
            return f"{parent} lies {depth} folders deep, deeper than any run's ({MAX_DEPTH} at most)"
        info = parent.stat()
        if _flags(parent, info.st_mode) & _UNREMOVABLE_FLAGS:
            return f"{parent} is immutable or append-only (lsattr shows it; chattr -ia clears it)"
        if not os.access(parent, os.W_OK | os.X_OK):
            return f"{parent} cannot be changed (permission denied)"
        for child in children:
            mode = child.lstat().st_mode
            if _flags(child, mode) & _UNREMOVABLE_FLAGS:
                return f"{child} is immutable or append-only (lsattr shows it; chattr -ia clears it)"
            sticky = info.st_mode & stat.S_ISVTX and euid not in (0, info.st_uid, child.lstat().st_uid)
            if sticky:
                return f"{child} belongs to another user in a folder where only owners remove files"
            if stat.S_ISDIR(mode):
                if not os.access(child, os.R_OK | os.X_OK):
                    return f"{child} cannot be listed (permission denied)"
                todo.append((child, list(child.iterdir()), depth + 1))
    return None


def clear(run_dir: Path) -> None:
    """Remove everything in the run folder but the lock file (held by this process);
    :class:`UserError`, with nothing removed, when a file system is mounted inside it
    (:func:`check_no_mounts`) or something in it is seen to be unremovable (immutable or
    append-only, a folder without write permission: :func:`_unremovable`); should removal still
    fail part way, the error says what is gone and what is left."""
    import shutil

    check_no_mounts(run_dir)
    entries = sorted((entry for entry in run_dir.iterdir() if entry.name != LOCK), key=lambda p: p.name)
    try:
        blocked = _unremovable(run_dir, entries)
    except OSError as err:
        blocked = f"{err.filename or run_dir} cannot be read ({err.strerror})"
    if blocked:
        raise UserError(f"cannot replace {run_dir}: {blocked}; nothing was removed")
    removed: list[str] = []

    def named(function: Any, path: str, err: Any) -> None:  # rmtree names the entry within its folder
        err = err[1] if isinstance(err, tuple) else err  # onerror's exc_info, onexc's exception
        if not isinstance(err, FileNotFoundError):
            raise OSError(err.errno, err.strerror, path)

    handler: dict[str, Any] = {"onexc": named} if sys.version_info >= (3, 12) else {"onerror": named}

    for entry in entries:
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, **handler)
            else:
                entry.unlink()
        except FileNotFoundError:
            pass
        except OSError as err:
            gone = ", ".join(shown_name(name) for name in removed) if removed else "nothing"
            raise UserError(
                f"cannot replace {run_dir}: removing {err.filename or entry} failed ({err.strerror}); the old run is "
                f"partly removed (gone: {gone}; {shown_name(entry.name)} partly); remove the folder yourself"
            ) from None
        removed.append(entry.name)


MOUNT_TABLE = Path("/proc/self/mountinfo")  # Linux: every mount this process sees, with its root
_OCTAL = re.compile(rb"\\([0-7]{3})")  # mountinfo writes a space, tab, newline or backslash in octal


def _mount_of(path: Path) -> tuple[int, Path] | None:
    """The ID of the mount that ``path`` (absolute; a link itself, not its target) lies on as
    this process sees it, the one on top, and the path it was taken of: ``path``, or its nearest
    ancestor that exists. From the kernel (``mnt_id`` of an O_PATH descriptor's fdinfo), so
    mounts stacked, moved or hidden by a later mount over a parent are taken as they are
    reached. None where there is no such interface (not Linux)."""
    flags = getattr(os, "O_PATH", None)
    if flags is None:
        return None
    for step in [path, *path.parents]:
        try:
            fd = os.open(step, flags | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            info = Path(f"/proc/self/fdinfo/{fd}").read_bytes()
        except OSError:
            return None
        finally:
            os.close(fd)
        found = re.search(rb"^mnt_id:\s*(\d+)", info, re.MULTILINE)
        return (int(found.group(1)), step) if found else None
    return None


def _mount_table() -> dict[int, tuple[int, Path, str, PurePosixPath | None]] | None:
    """Every mount of /proc/self/mountinfo by ID: (parent ID, mount point, device "major:minor",
    the folder of the device's file system mounted there: a bind mount shows the folder or file
    it repeats as its root; None for a source that was deleted, whose root ends in "//deleted"
    and no other name reaches); None when the table cannot be read."""
    try:
        table = MOUNT_TABLE.read_bytes()
    except OSError:
        return None
    mounts = {}
    for line in table.split(b"\n"):  # a line: ID, parent ID, major:minor, root, mount point, options, ...
        fields = line.split(b" ")
        if len(fields) < 5 or not (fields[0].isdigit() and fields[1].isdigit()):
            continue
        root, point = (os.fsdecode(_OCTAL.sub(lambda m: bytes([int(m.group(1), 8)]), f)) for f in fields[3:5])
        kept = None if root.endswith("//deleted") else PurePosixPath(root)  # before "//" is read as "/"
        mounts[int(fields[0])] = (int(fields[1]), Path(point), os.fsdecode(fields[2]), kept)
    return mounts


def _mount(mount_id: int) -> tuple[Path, str, PurePosixPath] | None:
    """(mount point, device "major:minor", the folder of the device's file system mounted
    there) of mount ``mount_id`` (:func:`_mount_table`); None when it is not there or cannot be
    read, or its source was deleted (no other name reaches it any more)."""
    found = (_mount_table() or {}).get(mount_id)
    if found is None or found[3] is None:
        return None
    return found[1], found[2], found[3]


def place(path: Path) -> tuple[str, PurePosixPath] | None:
    """Where an absolute, resolved ``path`` lies whatever name reaches it: (device, its path in
    that device's file system), from the mount it is on (:func:`_mount_of`) and that mount's
    root; a folder, and a bind mount of it or of a folder or file in it elsewhere, give places
    one inside the other. A path that does not exist yet is placed by its nearest existing
    ancestor. None where this cannot be known (not Linux, or a mount table that does not list
    the mount: a chroot)."""
    found = _mount_of(path)
    entry = _mount(found[0]) if found is not None else None
    if found is None or entry is None:
        return None
    step, (point, device, root) = found[1], entry
    try:
        inner = step.relative_to(point)
    except ValueError:
        return None
    return device, PurePosixPath(root, inner.as_posix(), path.relative_to(step).as_posix())


def is_within(path: Path, folder: Path, strict: bool = False) -> bool:
    """Whether ``path`` (absolute, resolved) is ``folder`` (resolved; not when ``strict``) or lies
    inside it: by name; by place (:func:`place`: a bind mount of the folder, of a folder inside
    it or of a file inside it, which clearing or writing into the folder reaches as well, and not
    what a mount on the way covers); where places cannot be known, by identity: a folder on the
    way with the folder's device and inode. :func:`within` asks it of many paths, placing the
    folder once."""
    return within(folder)(path, strict)


def within(folder: Path) -> Callable[[Path, bool], bool]:
    """:func:`is_within` of one ``folder`` (resolved), as a test ``inside(path, strict)`` of many
    paths: the folder is placed once (a read of the mount table), each path when it is asked."""
    outer = place(folder)

    def inside(path: Path, strict: bool = False) -> bool:
        chain = list(path.parents) if strict else [path, *path.parents]
        if folder in chain:
            return True
        inner = place(path) if outer is not None else None
        if inner is not None and outer is not None:  # the kernel's word: a mount on the way is seen
            same = inner[0] == outer[0]
            return same and (outer[1] in inner[1].parents or (not strict and outer[1] == inner[1]))
        try:
            key = folder.stat()
        except OSError:  # not there: nothing of it can be removed or written into
            return False
        for step in chain:
            try:
                found = step.stat()
            except OSError:
                continue
            if (found.st_dev, found.st_ino) == (key.st_dev, key.st_ino):
                return True
        return False

    return inside


def mounts_inside(folder: Path) -> list[Path]:
    """The entries of ``folder``, at any depth (links not followed), that are mounted on another
    mount than the folder's (a file system, a bind mount of a folder or a file); [] where mounts
    cannot be known (not Linux)."""
    folder = folder.resolve()  # a link to a run folder elsewhere: the folder's own mount
    own = _mount_of(folder)
    if own is None or own[1] != folder:
        return []
    found, todo = [], [folder]
    while todo:  # not os.walk: it recurses in Python 3.11, and a deep tree raised RecursionError
        parent = todo.pop()
        try:
            entries = list(os.scandir(parent))
        except OSError:
            continue
        for item in entries:
            entry = Path(item.path)
            mount = _mount_of(entry)
            if mount is not None and mount[1] == entry and mount[0] != own[0]:
                found.append(entry)  # and not into it
            elif item.is_dir(follow_symlinks=False):
                todo.append(entry)
    return found


def mounts_over(folder: Path) -> list[Path]:
    """Mount points, as this process sees them, of mounts made on a folder or file inside
    ``folder`` (resolved) by any name: inside it, or through a bind mount of it elsewhere, which
    makes its entry busy (clearing the folder would stop half-way there); [] where mounts cannot
    be known (not Linux, or a mount table that does not list the folder's mount)."""
    outer, table = place(folder), _mount_table()
    if outer is None or table is None:
        return []
    found = []
    for parent, point, _, _ in table.values():
        below = table.get(parent)
        if below is None or below[3] is None:
            continue
        try:  # where the mount point lies in the file system of the mount it was made on
            spot = PurePosixPath(below[3], point.relative_to(below[1]).as_posix())
        except ValueError:
            continue
        if below[2] == outer[0] and outer[1] in spot.parents:
            found.append(point)
    return found


def check_no_mounts(run_dir: Path) -> None:
    """:class:`UserError` when a file system is mounted inside a run folder that is to be
    cleared: removing its entries would empty that file system too (``shutil.rmtree`` goes into
    mounts, then fails on the mount point), and its contents reached by another name (a bind
    mount of it elsewhere) are not seen as the run's by :func:`is_within`; or when a mount is
    made on one of its entries through another name (:func:`mounts_over`): clearing would stop
    half-way at that busy entry."""
    inside = (mounts_inside(run_dir) + mounts_over(run_dir.resolve())) if run_dir.is_dir() else []
    if inside:
        raise UserError(
            f"{inside[0]} is a mount point on an entry of the run folder {run_dir}: clearing the folder would "
            "empty it or stop half-way; unmount it, or give another --out"
        )


def refuse_existing(run_dir: Path) -> None:
    """The Python API's guard: a fresh run does not write into a folder that holds anything."""
    if has_contents(run_dir):
        raise UserError(f"run folder {run_dir} exists; remove it, or pass resume=True to continue it")


# ----------------------------------------------------------------------------- data


def fingerprint(data: DataConfig) -> str | None:
    """A short fingerprint of the data a config names: the size and SHA-256 of an ``.npz``
    file; the count and a hash of the relative paths and sizes of a folder's images; None for
    the built-in data sets."""
    if not data.path or data.dataset not in ("npz", "table", "folder", "celeba"):
        return None
    path = Path(data.path)
    digest = hashlib.sha256()
    if data.dataset in ("npz", "table"):
        if not path.is_file():
            return None  # data.load says what is wrong with it
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return f"{data.dataset}:{path.stat().st_size}:{digest.hexdigest()[:16]}"
    from .folders import list_images

    if not path.is_dir():
        return None
    files = list_images(path)
    for file in files:
        digest.update(f"{file.relative_to(path)}\0{file.stat().st_size}\n".encode())
    return f"files:{len(files)}:{digest.hexdigest()[:16]}"


def pin_data(cfg: Config) -> Config:
    """``cfg`` with its data path made absolute and the data's fingerprint recorded, for a
    fresh run (so that a run read from another folder finds, and checks, the same data)."""
    if not cfg.data.path:
        return cfg
    path = str(Path(cfg.data.path).resolve())
    pinned = dataclasses.replace(cfg.data, path=path)
    return dataclasses.replace(cfg, data=dataclasses.replace(pinned, fingerprint=fingerprint(pinned)))


def check_data(data: DataConfig) -> None:
    """:class:`UserError` when the data a run recorded have changed since it was trained."""
    if data.fingerprint is None:
        return
    now = fingerprint(data)
    if now is not None and now != data.fingerprint:
        raise UserError(
            f"the data at {data.path} are not those the run was trained on (fingerprint {now}, "
            f"recorded {data.fingerprint}): put back the files it was trained on, or train a new run on these"
        )


def load_data(data: DataConfig, progress: bool | None = None) -> Any:
    """``data.load`` for a trained run, after checking the data are the run's; ``progress``: the
    bar of a first conversion of an image folder (None: on a terminal)."""
    from .data import load

    check_data(data)
    return load(data, progress)


# ----------------------------------------------------------------------------- schedule


def pin_schedule(cfg: Config, stored: Config | None) -> Config:
    """``cfg`` with ``train.schedule_epochs`` set: the epoch count the learning-rate milestones
    are fractions of. A fresh run plans for its ``epochs``; a resumed run keeps the count its
    run folder recorded (``stored``, the folder's config.json: its first session's epochs), so
    extending a run with a larger ``epochs`` continues at the decayed rate instead of jumping
    back up."""
    if cfg.train.schedule_epochs is not None:
        return cfg
    planned = cfg.train.epochs
    if stored is not None:  # a run of no epochs had no plan to keep: this session plans one
        planned = stored.train.schedule_epochs or stored.train.epochs or planned
    if planned < 1:  # no epochs, no plan (a later session that trains plans it)
        return cfg
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, schedule_epochs=planned))


# ----------------------------------------------------------------------------- checkpoints


def config_differences(run: Config, stored: Config, label: str = "config.json") -> list[str]:
    """The settings (``section.name was (config.json: is)``) in which a stored config (a
    checkpoint's, an export's metadata, a caller's) differs from the folder's ``config.json``
    (``run``; ``label`` names it), leaving out those a resumed session may change, and a
    budget's ``lr_scale`` where ``stored`` has 1 (the checkpoint of the first epoch, written
    before the budget's decision; a caller's config that leaves it to the run)."""
    leave_out = RESUMABLE | {"lr_scale"} if stored.train.lr_scale == 1 else RESUMABLE
    return [
        f"{section}.{f.name} {setting_text(was, True)} ({label}: {setting_text(now, True)})"
        for section, f, now, was in differing_settings(run, stored, leave_out)
    ]


def check_resumed_with(given: Config, payload: dict[str, Any], path: Path, run_dir: Path) -> Config | None:
    """:class:`UserError` when a caller resumes the run ``run_dir`` (``wae.fit(cfg, RUN,
    resume=True)``) with a config ``given`` that differs from the run's own, where its
    config.json and its checkpoint ``payload`` (read from ``path``) agree: the caller's value
    named as the caller's, not as config.json's (session 54). Returns the run's config.json as
    read (None without one)."""
    stored = run_config(run_dir)
    checkpoint = config_of(payload, path)
    if stored is None or config_differences(stored, checkpoint):
        return stored  # config.json and checkpoint disagree: check_checkpoint names that
    if differences := config_differences(stored, given, "the run"):
        raise UserError(
            f"the config given to resume {run_dir} differs from the run's (its config.json and checkpoint): "
            f"{first_few(differences, '; ')}; resume with the run's settings (wae.load_run(run).config) or train "
            "a new run with these"
        )
    return stored


def check_checkpoint(payload: dict[str, Any], path: Path, run_cfg: Config | None) -> None:
    """:class:`UserError` naming ``path`` when the checkpoint's config differs from the run's
    ``config.json`` or its weights hold NaN or infinite values."""
    stored = config_of(payload, path)  # a crafted checkpoint's config is refused naming it
    if run_cfg is not None:
        differences = config_differences(run_cfg, stored)
        if differences:
            raise UserError(
                f"checkpoint {path} does not match the run's config.json: {first_few(differences, '; ')}; put back "
                "the settings the run was trained with (the checkpoint's), or train a new run with these"
            )
    if bad := first_nonfinite((part, payload.get(part, {})) for part in ("model", "adversary")):
        raise UserError(f"checkpoint {path} holds NaN or infinite weights ({bad})")


def first_nonfinite(parts: Iterable[tuple[str, Mapping[str, Any]]]) -> str:
    """The first floating-point tensor of the state dicts ``parts`` ((part, state dict) pairs)
    that holds a NaN or infinite value, as "model decoder.net.2.running_var"; "" when none does:
    a checkpoint's weights as they are read, a training's before they are saved."""
    for part, tensors in parts:
        for name, value in tensors.items():
            if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all():
                return f"{part} {name}"
    return ""


@overload
def run_config(run_dir: Path, required: Literal[True]) -> Config: ...
@overload
def run_config(run_dir: Path, required: bool = False) -> Config | None: ...
def run_config(run_dir: Path, required: bool = False) -> Config | None:
    """The config a run folder was started with, its config.json, checked as flags are
    (:func:`wae.checkpoint.read_config_json`: a :class:`UserError` names the file and why);
    None when the folder has none, or with ``required`` a :class:`UserError` that it is no run
    folder."""
    if required:
        check_run_folder(run_dir)
    elif not has_config(run_dir):
        return None
    return read_config_json(run_dir / "config.json")[1]


def given_path(value: Any, what: str) -> Path:
    """``value`` as a path; :class:`UserError` for what is not one, or is empty (an unset shell
    variable would otherwise name the current folder)."""
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise UserError(f"{what} must be a non-empty path; got {value!r}")
    return Path(value)


def read_checkpoint(run: str | Path) -> tuple[dict[str, Any], Path]:
    """The newest checkpoint of a run folder (or a checkpoint file) with its path, checked
    against the run's config.json (when there is one) and for non-finite weights."""
    path = given_path(run, "run")
    if path.is_dir():
        # a damaged newer checkpoint is named, not passed over in silence
        found = load_latest(path, lambda m: warn_caller(m.removeprefix("warning: ")), "using")  # at the caller's line
        if found is None:
            why = entry_problem(path, FOLDER)
            raise UserError(f"{path} holds no checkpoint" + (f": {why}" if why else ""))
        payload, path = found
        folder = Path(run)
    else:
        payload = load_checkpoint(path)
        folder = path.parent.parent if path.parent.name == FOLDER else path.parent
    check_checkpoint(payload, path, run_config(folder))
    return payload, path


# ----------------------------------------------------------------------------- signals


# SIGHUP: the terminal was closed (not on Windows)
STOP_SIGNALS: tuple[int, ...] = tuple(
    int(s) for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None
)


def catch_signals(signums: Iterable[int], handler: Callable[[int, Any], None]) -> dict[int, Any]:
    """Install ``handler`` for each of ``signums`` that is not ignored now, and return the
    handlers it replaced (to put back with :func:`restore_signals`). A signal ignored when the
    command starts stays ignored, as the caller asked: ``nohup`` ignores SIGHUP, a script's
    background job SIGINT, ``trap '' TERM`` SIGTERM. Nothing outside the main thread, which
    alone receives signals."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {s: signal.signal(s, handler) for s in signums if signal.getsignal(s) is not signal.SIG_IGN}


def restore_signals(previous: dict[int, Any]) -> None:
    """Put back the handlers :func:`catch_signals` replaced (None, a handler set outside
    Python: the default)."""
    for signum, handler in previous.items():
        signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (sent by SLURM, torchrun and Kubernetes on preemption) and SIGHUP (the terminal
    closed) raise :class:`Interrupted` like Ctrl-C does, so that ``finally`` blocks run
    (temporary files are removed, locks released) and the command ends with one line; the
    training loop replaces this with its own handler, which checkpoints first. Ignored
    signals stay ignored (:func:`catch_signals`)."""

    def handle(signum: int, frame: Any) -> None:
        raise Interrupted(signum)

    previous = catch_signals([s for s in STOP_SIGNALS if s != signal.SIGINT], handle)
    try:
        yield
    finally:
        restore_signals(previous)


# ----------------------------------------------------------------------------- sessions


def session_config(cfg: Config, run_dir: str | Path | None, resume: bool) -> Config:
    """The config a training session runs with: the schedule pinned (:func:`pin_schedule`);
    a fresh run's data path made absolute and fingerprinted; a resumed run's data checked
    against the fingerprint its folder recorded. The folder's config.json is read once, here."""
    stored = run_config(Path(run_dir)) if resume and run_dir is not None else None
    cfg = pin_schedule(cfg, stored)
    if not resume:
        return pin_data(cfg)
    data = cfg.data
    if data.path:
        data = dataclasses.replace(data, path=str(Path(data.path).resolve()))
    if data.fingerprint is None and stored is not None and stored.data.path == data.path:
        data = dataclasses.replace(data, fingerprint=stored.data.fingerprint)
    check_data(data)
    return dataclasses.replace(cfg, data=data)


@contextlib.contextmanager
def writing(run_dir: str | Path | None, main: bool, resume: bool) -> Iterator[None]:
    """The run folder's lock for a training session on the main process; a fresh session
    refuses a folder that already holds something."""
    if run_dir is None or not main:
        yield
        return
    with run_lock(run_dir):
        if not resume:
            refuse_existing(Path(run_dir))
        yield
