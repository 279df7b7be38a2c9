"""Datasets held as in-memory tensors: embedded MNIST, a user's .npz, a synthetic set.

Images are stored as (n, c, h, w), uint8 when the source is uint8 (exact and 4x smaller),
float32 in [0, 1] otherwise; :func:`to_model_range` turns a batch into model input.
Batches are index slices of a seeded permutation: no per-item Python work.
"""

from __future__ import annotations

import hashlib
import math
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from .config import DataConfig, UserError, check_data_file, check_memory, failure_reason

if TYPE_CHECKING:
    from .folders import ImageFiles

MNIST_SHA256 = "06af5dfe73b70e3bc1c36439982b18a8d76803db9b544f6fdf838a37fbb01b64"


@dataclass
class ImageData:
    """Training and test images, each (n, c, h, w), and class labels (n,) where known: int64
    indices into ``classes``, the class names. The training images are a tensor, or image
    files decoded at every read (no cache)."""

    train: Tensor | ImageFiles
    test: Tensor
    name: str
    train_labels: Tensor | None = None
    test_labels: Tensor | None = None
    classes: tuple[str, ...] = ()

    @property
    def channels(self) -> int:
        """Colour channels: 1 (grey) or 3 (RGB)."""
        return int(self.train.shape[1])

    @property
    def size(self) -> int:
        """Image side in pixels (images are square)."""
        return int(self.train.shape[2])


def to_model_range(images: Tensor, value_range: str = "01") -> Tensor:
    """uint8 or [0, 1] float images -> float32 in [0, 1] ("01") or [-1, 1] ("pm1")."""
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    return x * 2.0 - 1.0 if value_range == "pm1" else x


def to_unit_range(images: Tensor, value_range: str = "01") -> Tensor:
    """Model-range images -> [0, 1] for display and metrics."""
    return ((images + 1.0) / 2.0).clamp(0, 1) if value_range == "pm1" else images.clamp(0, 1)


def mnist_path() -> Path:
    """The embedded MNIST file: $WAE_DATA_DIR/mnist.npz, or data/mnist.npz in the repository."""
    root = os.environ.get("WAE_DATA_DIR")
    return Path(root) / "mnist.npz" if root else Path(__file__).resolve().parent.parent / "data" / "mnist.npz"


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_mnist(path: Path | None = None) -> ImageData:
    """The embedded MNIST (60k train, 10k test, 28x28 grey, uint8), checked by sha256."""
    given = path is not None  # data.path with data.dataset "mnist" (the default): a copy of MNIST, or a
    path = Path(path) if path is not None else mnist_path()  # file of the user's whose dataset was left out
    yours = (
        " (with data.dataset mnist, the default, data.path names a copy of MNIST; for your own data, set "
        'data.dataset = "npz", "folder" or "table", or give --data)'
        if given
        else "; restore data/mnist.npz"
    )
    if not path.is_file():
        shipped = "; it ships with the repository as data/mnist.npz"
        raise UserError(f"MNIST file not found at {path}" + (yours if given else shipped))
    if sha256_of(path) != MNIST_SHA256:
        raise UserError(f"MNIST file {path} is altered or corrupt (sha256 mismatch){yours}")
    with np.load(path) as f:
        train, test = torch.from_numpy(f["x_train"]).unsqueeze(1), torch.from_numpy(f["x_test"]).unsqueeze(1)
        train_labels, test_labels = torch.from_numpy(f["y_train"]).long(), torch.from_numpy(f["y_test"]).long()
    return ImageData(train, test, "mnist", train_labels, test_labels, tuple(str(d) for d in range(10)))


MAX_CLASSES = 100_000  # far above any use; keeps a column of ids given as labels from asking for a huge embedding


def class_labels(values: np.ndarray, count: int, where: str) -> tuple[Tensor, tuple[str, ...]]:
    """Labels given by the user (a 1-D integer array of ``count`` entries; (count, 1) too) as
    (indices (count,) into the sorted distinct values, the values as class names);
    :class:`UserError` naming ``where`` for another shape or length, non-integers, or fewer
    than 2 classes."""
    array = np.asarray(values)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise UserError(f"{where} has shape {tuple(array.shape)}; give one integer label per image, shape (n,)")
    if len(array) != count:
        raise UserError(f"{where} holds {len(array)} labels for {count} images; give one per image")
    if not np.issubdtype(array.dtype, np.integer):
        raise UserError(f"{where} has dtype {array.dtype}; class labels must be integers")
    values_found, indices = np.unique(array, return_inverse=True)
    if len(values_found) < 2:
        raise UserError(
            f"{where} holds a single class ({values_found[0] if len(values_found) else 'none'}); "
            "a conditional WAE needs at least 2"
        )
    if len(values_found) > MAX_CLASSES:
        raise UserError(f"{where} holds {len(values_found)} classes; at most {MAX_CLASSES} are supported")
    return torch.from_numpy(indices.reshape(-1).astype(np.int64)), tuple(str(int(v)) for v in values_found)


def known_class_labels(values: np.ndarray, count: int, classes: tuple[str, ...], where: str) -> Tensor:
    """Labels of test images as indices into the training ``classes``; :class:`UserError` as
    :func:`class_labels`, or for a class the training labels do not have."""
    array = np.asarray(values)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1 or len(array) != count or not np.issubdtype(array.dtype, np.integer):
        class_labels(array, count, where)  # says what is wrong
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted({str(int(v)) for v in np.unique(array)} - set(index))
    if unknown:
        raise UserError(f"{where} holds class(es) {', '.join(unknown[:5])} that the training labels do not")
    return torch.tensor([index[str(int(v))] for v in array], dtype=torch.int64)


def _as_nchw(array: np.ndarray, path: Path, key: str) -> Tensor:
    """Validate one image array of a user's .npz and return it as an (n, c, h, w) tensor."""
    where = f"{path}: '{key}'"
    if array.dtype == np.uint8:
        tensor = torch.from_numpy(np.ascontiguousarray(array))
    elif np.issubdtype(array.dtype, np.floating):
        if array.size and not np.isfinite(array).all():
            raise UserError(f"{where} holds NaN or infinite values")
        if array.size and (array.min() < 0.0 or array.max() > 1.0):
            raise UserError(f"{where} holds floats outside [0, 1]; give uint8 or floats in [0, 1]")
        tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    else:
        raise UserError(f"{where} has dtype {array.dtype}; give uint8 or floats in [0, 1]")
    if tensor.ndim == 3:
        tensor = tensor.unsqueeze(1)
    elif tensor.ndim == 4 and tensor.shape[-1] in (1, 3) and tensor.shape[1] not in (1, 3):
        tensor = tensor.permute(0, 3, 1, 2).contiguous()
    if tensor.ndim != 4 or tensor.shape[1] not in (1, 3):
        raise UserError(f"{where} has shape {tuple(array.shape)}; expected (n, h, w), (n, h, w, c) or (n, c, h, w)")
    if tensor.shape[2] != tensor.shape[3]:
        raise UserError(f"{where} has {tensor.shape[2]}x{tensor.shape[3]} images; square images are needed")
    if tensor.shape[0] == 0:
        raise UserError(f"{where} holds no images")
    return tensor


def npz_array(archive: np.lib.npyio.NpzFile, key: str, path: Path) -> np.ndarray:
    """One array of an open .npz, its header checked before anything is allocated: no Python
    objects, and a size (with its float32 copy) that fits in the memory available; a damaged
    member (bad CRC, truncated) is a :class:`UserError`."""
    where = f"{path}: '{key}'"
    try:
        assert archive.zip is not None  # an open NpzFile
        with archive.zip.open(f"{key}.npy") as member:
            version = np.lib.format.read_magic(member)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            if version not in read_header:
                raise ValueError(f"npy format version {version}")
            shape, _, dtype = read_header[version](member)
    except KeyError:  # zipfile's words for a member not there
        raise UserError(f"{path} has no '{key}' array") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise UserError(f"{where} is damaged or not a numpy array ({failure_reason(err)})") from None
    if dtype.hasobject:
        raise UserError(f"{where} holds Python objects (a pickled array), which are never loaded; give numbers")
    if dtype.kind == "c":  # torch would drop the imaginary parts with a warning
        raise UserError(f"{where} holds complex numbers; give real ones")
    nbytes = math.prod(shape) * dtype.itemsize
    float_copy = 0 if dtype == np.uint8 else math.prod(shape) * 4
    check_memory(nbytes + float_copy, f"{where} (shape {tuple(shape)}, {dtype})")
    try:
        return archive[key]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise UserError(f"{where} is damaged ({failure_reason(err)})") from None


def open_npz(path: Path) -> Any:
    """``np.load`` of an .npz file without pickles; :class:`UserError` when it is not one (a plain
    .npy or a pickle named .npz, which np.load would also read, or a damaged archive)."""
    if not zipfile.is_zipfile(path):
        raise UserError(f"{path} is not a readable .npz file (numpy's savez format)")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        raise UserError(f"{path} is not a readable .npz file (numpy's savez format)") from None


def training_key(f: Any, path: Path) -> str:
    """The name of the training array of an opened .npz: "x_train", else "x"; :class:`UserError` without either."""
    key = "x_train" if "x_train" in f else "x" if "x" in f else None
    if key is None:
        raise UserError(f"{path} has no 'x_train' or 'x' array (found: {', '.join(f.files) or 'nothing'})")
    return key


def load_npz(path: str | Path, labels: bool = False) -> ImageData:
    """A user's images from an .npz with ``x_train`` (or ``x``) and optionally ``x_test``;
    with ``labels``, their integer classes too: ``y_train`` (or ``y``), and ``y_test`` with
    ``x_test`` (:class:`UserError` when missing or not one integer per image).

    Without ``x_test`` the last 10 % of the training images (and labels) are held out as the
    test set."""
    path = Path(path)
    check_data_file(path)
    with open_npz(path) as f:
        key = training_key(f, path)
        train = _as_nchw(npz_array(f, key, path), path, key)
        test = _as_nchw(npz_array(f, "x_test", path), path, "x_test") if "x_test" in f else None
        if labels:
            y_key = {"x_train": "y_train", "x": "y"}[key]
            if y_key not in f:
                raise UserError(f"{path} has no '{y_key}' array of class labels, which --condition labels needs")
            train_labels, classes = class_labels(npz_array(f, y_key, path), len(train), f"{path}: '{y_key}'")
            if test is not None:
                if "y_test" not in f:
                    raise UserError(f"{path} has x_test but no 'y_test' array of its class labels")
                test_labels = known_class_labels(npz_array(f, "y_test", path), len(test), classes, f"{path}: 'y_test'")
    if test is None:
        held = max(1, len(train) // 10)
        if len(train) - held < 2:
            raise UserError(f"{path}: '{key}' holds {len(train)} images; at least 3 are needed")
        train, test = train[:-held], train[-held:]
        if labels:
            train_labels, test_labels = train_labels[:-held], train_labels[-held:]
    if test.shape[1:] != train.shape[1:]:
        raise UserError(f"{path}: x_test images {tuple(test.shape[1:])} differ from x_train {tuple(train.shape[1:])}")
    if labels:
        return ImageData(train, test, path.stem, train_labels, test_labels, classes)
    return ImageData(train, test, path.stem)


SYNTHETIC_CLASSES = ("top-left", "top-right", "bottom-left", "bottom-right")


def make_synthetic(count: int = 512, size: int = 28, seed: int = 0) -> ImageData:
    """Grey images of one bright Gaussian blob at a random place and width (float32 in
    [0, 1]); ``count`` training and ``count // 4`` test images, labelled by the quadrant of the
    blob's centre (:data:`SYNTHETIC_CLASSES`). Tiny and fast, for tests."""
    rng = np.random.default_rng(seed)
    total = count + max(count // 4, 2)
    coords = np.arange(size, dtype=np.float32)
    cy, cx = rng.uniform(size * 0.25, size * 0.75, (2, total, 1, 1)).astype(np.float32)
    width = rng.uniform(size * 0.06, size * 0.15, (total, 1, 1)).astype(np.float32)
    images = np.exp(-((coords[None, :, None] - cy) ** 2 + (coords[None, None, :] - cx) ** 2) / (2 * width**2))
    tensor = torch.from_numpy(images.astype(np.float32)).unsqueeze(1)
    middle = (size - 1) / 2  # the centre of the pixel grid
    quadrant = torch.from_numpy(((cy > middle) * 2 + (cx > middle)).reshape(-1).astype(np.int64))
    return ImageData(tensor[:count], tensor[count:], "synthetic", quadrant[:count], quadrant[count:], SYNTHETIC_CLASSES)


def from_tensor(
    images: Tensor | np.ndarray,
    test: Tensor | np.ndarray | None = None,
    labels: Tensor | np.ndarray | None = None,
    test_labels: Tensor | np.ndarray | None = None,
) -> ImageData:
    """Wrap a user's images ((n, h, w), (n, h, w, c) or (n, c, h, w); uint8, or floats of any
    precision in [0, 1]), a tensor on any device or a numpy array, and optionally their integer
    class ``labels`` (n,) (and ``test_labels`` with ``test``); :class:`UserError` for anything
    else (a list, another dtype, NaN, another shape, labels that are not one integer per
    image)."""
    train = _as_nchw(_as_array(images, "images"), Path("<tensor>"), "images")
    y, classes = (
        class_labels(_labels_array(labels, "labels"), len(train), "labels") if labels is not None else (None, ())
    )
    if test is None:
        if test_labels is not None:
            raise UserError("test_labels were given without test_images")
        held = max(1, len(train) // 10)
        if len(train) - held < 2:
            raise UserError(f"images: {len(train)} images; at least 3 are needed")
        train, test_t = train[:-held], train[-held:]
        y_test = y[-held:] if y is not None else None
        y = y[:-held] if y is not None else None
    else:
        test_t = _as_nchw(_as_array(test, "test_images"), Path("<tensor>"), "test")
        if test_t.shape[1:] != train.shape[1:]:
            raise UserError(f"test_images {tuple(test_t.shape[1:])} differ from images {tuple(train.shape[1:])}")
        if y is not None and test_labels is None:
            raise UserError("labels were given with test_images but without test_labels")
        if y is None and test_labels is not None:
            raise UserError("test_labels were given without labels")
        y_test = None
        if test_labels is not None:
            y_test = known_class_labels(_labels_array(test_labels, "test_labels"), len(test_t), classes, "test_labels")
    return ImageData(train, test_t, "tensor", y, y_test, classes)


def _labels_array(labels: object, name: str) -> np.ndarray:
    if isinstance(labels, Tensor):
        return labels.detach().cpu().numpy()
    if isinstance(labels, np.ndarray):
        return labels
    raise UserError(f"{name} must be a torch.Tensor or a numpy array; got {type(labels).__name__}")


def _as_array(images: object, name: str) -> np.ndarray:
    """A tensor or array of images as a numpy array: floats of a precision numpy lacks (bf16)
    or a tensor on a GPU converted; :class:`UserError` for other types."""
    if isinstance(images, np.ndarray):
        return images
    if isinstance(images, Tensor):
        images = images.detach().cpu()
        return (images.float() if images.is_floating_point() and images.dtype != torch.float64 else images).numpy()
    raise UserError(f"{name} must be a torch.Tensor or a numpy array; got {type(images).__name__}")


def load_folder(
    root: Path,
    size: int,
    grey: bool = False,
    crop: int = 0,
    celeba: bool = False,
    cache: bool = True,
    progress: bool | None = None,
) -> ImageData:
    """Images of a folder (or CelebA, with its official split) as uint8 tensors over a
    memory-mapped cache; or, without ``cache``, training images decoded at every read (an
    :class:`~wae.folders.ImageFiles`) and the test images decoded once into memory. See
    ``wae.folders``."""
    from .folders import ImageFiles, celeba_files, images_array, list_images, split

    if celeba:
        train_files, test_files = celeba_files(root)
        if cache:
            train = torch.from_numpy(images_array(train_files, size, grey, crop, progress))
            return ImageData(train, torch.from_numpy(images_array(test_files, size, grey, crop, progress)), "celeba")
    else:
        files = list_images(root)
        if not files:
            raise UserError(f"no image files (png, jpg, jpeg, bmp, webp) in {root}")
        if cache:  # split after decoding: unreadable files are left out of the cache
            train_array, test_array = split(images_array(files, size, grey, crop, progress))
            return ImageData(torch.from_numpy(train_array), torch.from_numpy(test_array), root.name)
        train_files, test_files = split(files)
    name = "celeba" if celeba else root.name
    return ImageData(ImageFiles(train_files, size, grey, crop), ImageFiles(test_files, size, grey, crop)[:], name)


def load(cfg: DataConfig, progress: bool | None = None) -> ImageData:
    """The dataset a config names; ``progress``: the bar of a first conversion of an image
    folder to its cache (None: when stderr is a terminal)."""
    if cfg.dataset == "mnist":
        return load_mnist(Path(cfg.path) if cfg.path else None)
    if cfg.dataset == "synthetic":
        return make_synthetic(cfg.synthetic_count, cfg.synthetic_size)
    labels = cfg.condition == "labels"
    if cfg.dataset == "npz":
        if not cfg.path:
            raise UserError("dataset npz needs a path (--data FILE.npz)")
        return load_npz(cfg.path, labels)
    if cfg.dataset == "folder" and labels:
        if not cfg.path:
            raise UserError("dataset folder needs a path (--data FOLDER)")
        from .folders import load_class_folders

        return load_class_folders(Path(cfg.path), cfg.image_size, cfg.grey, cfg.crop, cfg.cache, progress)
    if cfg.dataset in ("folder", "celeba"):
        if not cfg.path:
            raise UserError(f"dataset {cfg.dataset} needs a path (--data FOLDER)")
        celeba = cfg.dataset == "celeba"
        return load_folder(Path(cfg.path), cfg.image_size, cfg.grey, cfg.crop, celeba, cfg.cache, progress)
    if cfg.dataset == "table":
        if not cfg.path:
            raise UserError(
                "dataset table needs a path (--data FILE.csv|.npy|.npz); a run trained on an array given in "
                "Python has no data on disk"
            )
        from .tables import load_table

        return load_table(cfg.path, cfg.held_out)
    if cfg.dataset == "tensor":
        raise UserError("this run was trained on a tensor given in Python; its images are not on disk")
    raise UserError(f"unknown dataset '{cfg.dataset}'")


def epoch_order(n: int, seed: int, epoch: int) -> Tensor:
    """The shuffled order of epoch ``epoch``: a function of (seed, epoch) only, so that a
    resumed run sees exactly the batches an uninterrupted one would."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=generator)


def batch_indices(
    n: int, batch_size: int, seed: int, epoch: int, start: int = 0, rank: int = 0, world: int = 1
) -> Iterator[Tensor]:
    """Indices of the full batches of epoch ``epoch`` from batch index ``start`` on (the last
    partial batch is dropped so that every MMD estimate uses the same number of codes). With
    ``world`` processes, rank ``rank`` gets only its contiguous 1/world of each batch: a
    distributed sampler whose shards together are exactly the one-process batch."""
    order = epoch_order(n, seed, epoch)
    local = batch_size // world
    for b in range(start, n // batch_size):
        first = b * batch_size + rank * local
        yield order[first : first + local]


def batches(
    images: Tensor, batch_size: int, seed: int, epoch: int, start: int = 0, rank: int = 0, world: int = 1
) -> Iterator[Tensor]:
    """The images of :func:`batch_indices`, read by index from a tensor in memory (or a
    memory-mapped cache)."""
    for index in batch_indices(len(images), batch_size, seed, epoch, start, rank, world):
        yield images[index]


def stream(
    files: ImageFiles,
    batch_size: int,
    seed: int,
    epoch: int,
    start: int = 0,
    rank: int = 0,
    world: int = 1,
    workers: int = 2,
    pin_memory: bool = False,
) -> Iterator[Tensor]:
    """The batches of :func:`batch_indices` decoded from image files by a DataLoader with
    ``workers`` processes (0: in this process), in the same order as :func:`batches`."""
    from torch.utils.data import DataLoader

    sampler = [index.tolist() for index in batch_indices(len(files), batch_size, seed, epoch, start, rank, world)]
    yield from DataLoader(files, batch_sampler=sampler, num_workers=workers, pin_memory=pin_memory)
