"""Where training runs: the device, and the processes of a ``torchrun`` launch.

One process is the tested default. Under ``torchrun --nproc-per-node N -m wae train ...`` each
process takes 1/N of every global batch (the same shuffled order on every rank, so the N
shards together are exactly the batch one process would see), gradients are averaged by
DistributedDataParallel, and the latent penalty is computed on the **global** batch: codes are
all-gathered with their gradients and every rank draws the same prior sample.

Why the gradient is right: every rank computes the same penalty on the same gathered codes;
the all-gather's backward sums the N ranks' gradients for each shard (N times one rank's), and
DDP's average divides by N again, so the update is that of penalty(global batch) plus the mean
reconstruction cost over the global batch, as in one process.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import Tensor

from .config import DEVICES, UserError, json_repr, too_long

T = TypeVar("T")


@dataclass(frozen=True)
class Processes:
    """This process's place in the launch: rank ``rank`` of ``world`` (1: no launch)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0 alone writes logs, grids, checkpoints and reports."""
        return self.rank == 0


def launched() -> Processes:
    """The launch torchrun describes in the environment (RANK, WORLD_SIZE, LOCAL_RANK).
    :class:`UserError` when one of them is set to something other than a whole number, for
    WORLD_SIZE below 1, and (with WORLD_SIZE above 1) for RANK or LOCAL_RANK outside
    0 .. WORLD_SIZE - 1. An empty variable counts as unset."""
    world = _environ_int("WORLD_SIZE", 1)
    if world < 1:
        raise UserError(f"WORLD_SIZE={world} in the environment: a launch has at least 1 process (torchrun sets it)")
    if world == 1:
        return Processes()
    unset = [name for name in ("RANK", "MASTER_ADDR", "MASTER_PORT") if not os.environ.get(name, "").strip()]
    if unset:  # set by hand, not by torchrun: the rendezvous would fail with a traceback
        raise UserError(f"WORLD_SIZE={world} in the environment without {', '.join(unset)}: launch with torchrun")
    rank, local_rank = _environ_int("RANK", 0), _environ_int("LOCAL_RANK", 0)
    for name, value in (("RANK", rank), ("LOCAL_RANK", local_rank)):
        if not 0 <= value < world:
            raise UserError(f"{name}={value} in the environment is outside 0 .. WORLD_SIZE - 1 = {world - 1}")
    return Processes(rank, world, local_rank)


def _environ_int(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        if not text.isascii():  # int() reads other scripts' digits too
            raise ValueError(text)
        return int(text)
    except ValueError:
        raise UserError(
            f"{name}={json_repr(text)} in the environment is not a whole number{too_long(text)} (torchrun sets it)"
        ) from None


def resolve_device(name: str, local_rank: int = 0, setting: str = "train.device") -> torch.device:
    """The device ``name`` ("auto", "cpu", "cuda" or "mps") means here; each process of a
    multi-GPU launch takes the GPU of its local rank. :class:`UserError` when it is absent,
    naming the setting as ``setting`` (its flag, or a file's key), or when ``name`` is none of
    those four (a ``cuda:1`` too: a launch's rank picks the GPU)."""
    if name not in DEVICES:
        raise UserError(f"{setting} must be one of {', '.join(DEVICES)}; got {json_repr(name)}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"{setting} cuda: no CUDA GPU is visible to torch here")
        if local_rank >= torch.cuda.device_count():
            raise UserError(f"local rank {local_rank} has no GPU ({torch.cuda.device_count()} visible)")
        return torch.device("cuda", local_rank)
    if name == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"{setting} mps: the Apple GPU backend is not available here")
    return torch.device(name)


@contextlib.contextmanager
def process_group(device: torch.device) -> Iterator[Processes]:
    """Join the launch's process group (nccl on CUDA, gloo otherwise) for the duration, or do
    nothing for a single process or when the group already exists (then it is left as found)."""
    procs = launched()
    if procs.world == 1 or dist.is_initialized():
        yield procs
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield procs
    finally:
        dist.destroy_process_group()


def shard(rows: Tensor, procs: Processes) -> Tensor:
    """This rank's contiguous 1/world of ``rows`` (first dimension divisible by the world)."""
    if procs.world == 1:
        return rows
    n = rows.shape[0] // procs.world
    return rows[procs.rank * n : (procs.rank + 1) * n]


def gather(rows: Tensor, procs: Processes) -> Tensor:
    """All ranks' ``rows`` concatenated in rank order, differentiable (see the module note)."""
    if procs.world == 1:
        return rows
    import torch.distributed.nn.functional as dist_nn

    with warnings.catch_warnings():
        # deprecated in favour of a private API without a stable autograd entry point
        warnings.filterwarnings("ignore", message=".*all_gather is deprecated", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*all_gather is deprecated", category=UserWarning)
        return torch.cat(dist_nn.all_gather(rows))


def mean_over(values: Tensor, procs: Processes) -> Tensor:
    """The mean of ``values`` over the ranks (a NaN anywhere makes it NaN everywhere)."""
    if procs.world == 1:
        return values
    total = values.detach().clone()
    dist.all_reduce(total)
    return total / procs.world


def all_true(flag: bool, device: torch.device, procs: Processes) -> bool:
    """Whether ``flag`` holds on every rank, so that all ranks take the same branch."""
    if procs.world == 1:
        return flag
    value = torch.tensor([int(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item())


def barrier(procs: Processes) -> None:
    """Wait for all ranks (no-op for one process)."""
    if procs.world > 1:
        dist.barrier()


def on_main_first(procs: Processes, device: torch.device, work: Callable[[], T]) -> T:
    """``work()`` on rank 0, then on the other ranks (which may read what rank 0 made, such
    as a dataset cache). A :class:`UserError` on rank 0 stops every rank: rank 0 raises it,
    the others raise one pointing to it, so that none waits forever."""
    if procs.world == 1:
        return work()
    failure: UserError | None = None
    result: T | None = None
    if procs.main:
        try:
            result = work()
        except UserError as err:
            failure = err
    ok = torch.tensor([int(failure is None)], device=device)
    dist.broadcast(ok, src=0)
    if failure is not None:
        raise failure
    if not ok.item():
        raise UserError("rank 0 stopped with an error (see its message)")
    return result if procs.main else work()  # type: ignore[return-value]
