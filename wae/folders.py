"""Image folders and CelebA, converted once to a uint8 ``.npy`` cache read by memory map.

A folder of PNG/JPEG/BMP/WebP files (nested folders included) becomes an (n, c, s, s) uint8
array: each image is centre-cropped (to a square of its shorter side, or to ``crop`` pixels),
resized to ``s`` x ``s`` (PIL bilinear, which antialiases when shrinking) and made grey or RGB.
Files that cannot be read (not an image, truncated) are skipped and counted, never a crash.
The array is written once to ``$WAE_CACHE_DIR/datasets/<key>.npy`` (key: the folder, each
file's name, size and modification time, and the preprocessing) and then memory-mapped, so
later runs start at once and batches are index slices as for MNIST.

CelebA: the folder holding ``img_align_celeba/`` (or that folder itself), with the official
``list_eval_partition.txt`` when present (partition 0 trains, 2 tests; 1, validation, is not
used); the paper's preprocessing: centre crop 140x140, resize to 64x64, RGB.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm import tqdm

from .config import UserError, cache_dir, failure_reason

if TYPE_CHECKING:
    from .data import ImageData

S = TypeVar("S", list[Path], np.ndarray)
EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
CELEBA_CROP = 140
CELEBA_SIZE = 64


def list_images(root: Path) -> list[Path]:
    """Image files below ``root`` (any depth), sorted; hidden files and folders are skipped."""
    if not root.is_dir():
        raise UserError(f"image folder not found: {root}")
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(folder) / f for f in files if not f.startswith(".") and Path(f).suffix.lower() in EXTENSIONS]
    return regular_files(sorted(found), root)


def regular_files(paths: list[Path], root: Path) -> list[Path]:
    """The paths that are regular files, symbolic links followed; the others (a FIFO, socket or
    device named like an image, which would block or never end; a dangling link; a link loop)
    are left out, never opened, with one warning that counts them."""
    kept: list[Path] = []
    skipped: list[Path] = []
    for path in paths:
        try:
            regular = stat.S_ISREG(os.stat(path).st_mode)
        except OSError:  # dangling link, link loop, no permission to stat
            regular = False
        (kept if regular else skipped).append(path)
    if skipped and not kept:
        raise UserError(
            f"no readable image files in {root}: {len(skipped)} image name(s) are not regular files (FIFO, socket, "
            f"device, dangling link or link loop), e.g. {skipped[0]}"
        )
    if skipped:
        warnings.warn(
            f"skipped {len(skipped)} of {len(paths)} image names that are not regular files (FIFO, socket, "
            f"device, dangling link or link loop), e.g. {skipped[0]}",
            stacklevel=2,
        )
    return kept


def as_viewed(im: Image.Image, grey: bool) -> Image.Image:
    """``im`` as an image viewer shows it, in mode L or RGB: turned by its EXIF orientation;
    colours through its ICC profile to sRGB; 16- and 32-bit integer grey (I;16*, I) scaled from
    [0, 65535] and float grey (F) from [0, 1], not clipped; LAB and CMYK through colour
    management; transparency (alpha, a palette's or a colour key) composited on white."""
    try:
        im = ImageOps.exif_transpose(im)
    except Exception:  # broken EXIF (any error Pillow's parser raises): shown unturned, as viewers do
        pass
    if im.mode.startswith("I") or im.mode == "F":
        values = np.nan_to_num(np.asarray(im, dtype=np.float64))
        scaled = values / 65535.0 if im.mode.startswith("I") else values
        im = Image.fromarray((np.clip(scaled, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), "L")
    elif im.mode == "LAB":
        from PIL import ImageCms

        lab_to_srgb = ImageCms.buildTransform(
            ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB"
        )
        im = ImageCms.applyTransform(im, lab_to_srgb) or im
    else:
        im = _to_srgb(im)
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if "transparency" in im.info and im.mode in ("L", "RGB"):  # a colour key (PNG tRNS)
        im = im.convert("RGBA")
    if im.mode == "La":  # premultiplied grey, which Pillow converts only as RGBa
        im = Image.merge("RGBa", (*im.split()[:1] * 3, im.split()[1]))
    if im.mode in ("RGBA", "LA", "PA", "RGBa"):
        rgba = im.convert("RGBA")
        im = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return im.convert("L" if grey else "RGB")


def _to_srgb(im: Image.Image) -> Image.Image:
    """``im`` through its embedded ICC profile to sRGB (RGB, or RGBA keeping its alpha); as it is
    when it has none, and CMYK or YCbCr by Pillow's conversion then."""
    profile = im.info.get("icc_profile")
    if profile and im.mode in ("RGB", "RGBA", "CMYK", "L", "LA"):
        from PIL import ImageCms

        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
            mode = "RGBA" if im.mode in ("RGBA", "LA") else "RGB"
            base = im.convert("RGBA") if im.mode == "LA" else im
            return ImageCms.profileToProfile(base, source, ImageCms.createProfile("sRGB"), outputMode=mode) or im
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # an unreadable profile: show the numbers as they are, as most viewers do
    if im.mode in ("CMYK", "YCbCr", "HSV", "1", "RGBX"):
        return im.convert("RGB")
    return im


_UNDECODABLE = (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError)


def image_or_reason(path: Path, size: int, grey: bool, crop: int = 0) -> np.ndarray | str:
    """One image as uint8 (c, size, size), or why the file cannot be decoded, in words (for the
    warning that skips it), from the one attempt to decode it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL's warnings on odd metadata
            with Image.open(path) as im:
                im.load()
                picture = as_viewed(im, grey)
    except UnidentifiedImageError:
        return "not an image file PIL can read"
    except _UNDECODABLE as err:
        return failure_reason(err)
    w, h = picture.size
    side = min(crop, w, h) if crop > 0 else min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    picture = picture.crop((left, top, left + side, top + side))
    if side != size:
        picture = picture.resize((size, size), Image.Resampling.BILINEAR)
    array = np.asarray(picture, dtype=np.uint8)
    return array[None] if grey else array.transpose(2, 0, 1)


def load_image(path: Path, size: int, grey: bool, crop: int = 0) -> np.ndarray | None:
    """One image as uint8 (c, size, size), or None when the file cannot be decoded
    (:func:`image_or_reason`)."""
    image = image_or_reason(path, size, grey, crop)
    return None if isinstance(image, str) else image


def cache_key(files: list[Path], size: int, grey: bool, crop: int) -> str:
    """Hash of the file list (names, sizes, modification times) and the preprocessing."""
    digest = hashlib.sha256(f"v1|{size}|{grey}|{crop}".encode())
    for f in files:
        st = f.stat()
        digest.update(f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


def images_array(files: list[Path], size: int, grey: bool, crop: int = 0, progress: bool | None = None) -> np.ndarray:
    """The images of ``files`` as a uint8 (n, c, size, size) array, memory-mapped from the
    cache (built on first use, with a progress bar); unreadable files are left out with one
    warning that counts them."""
    if not files:
        raise UserError("no images to load")
    path = cache_dir() / "datasets" / f"{cache_key(files, size, grey, crop)}.npy"
    if path.is_file():
        try:
            return np.load(path, mmap_mode="c")
        except (OSError, ValueError):
            pass  # damaged cache: rebuild
    writable_folder(path.parent, len(files) * (1 if grey else 3) * size * size)
    channels = 1 if grey else 3
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(files), channels, size, size))
    kept, skipped = 0, []
    for f in tqdm(
        files,
        desc=f"caching {len(files)} images",
        unit="img",
        disable=None if progress is None else not progress,
        dynamic_ncols=True,
    ):
        image = image_or_reason(f, size, grey, crop)
        if isinstance(image, str):
            skipped.append(f"{f} ({image})")
            continue
        array[kept] = image
        kept += 1
    if skipped:
        names = ", ".join(skipped[:3]) + (" ..." if len(skipped) > 3 else "")
        warnings.warn(f"skipped {len(skipped)} unreadable image file(s) of {len(files)}: {names}", stacklevel=2)
    if kept == 0:
        del array
        tmp.unlink()
        raise UserError(f"none of the {len(files)} image files could be read")
    if kept < len(files):  # shrink to the images that were read
        final = path.with_name(f".{path.name}.{os.getpid()}.final.tmp")
        shrunk = np.lib.format.open_memmap(final, mode="w+", dtype=np.uint8, shape=(kept, channels, size, size))
        shrunk[:] = array[:kept]
        shrunk.flush()
        del array, shrunk
        tmp.unlink()
        tmp = final
    else:
        array.flush()
        del array
    tmp.replace(path)
    return np.load(path, mmap_mode="c")


def writable_folder(folder: Path, nbytes: int) -> None:
    """Make ``folder`` (the cache's) and check, before any image is decoded, that a file can be
    written in it and that its disk has room for ``nbytes``; :class:`UserError` otherwise
    (``$WAE_CACHE_DIR`` a file, read-only, or full)."""
    hint = "set WAE_CACHE_DIR to a writable folder, or train with --no-cache"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
        free = shutil.disk_usage(folder).free
    except OSError as err:
        raise UserError(f"cannot write the image cache in {folder}: {err.strerror}; {hint}") from None
    if nbytes > free:
        raise UserError(
            f"the image cache needs {nbytes / 2**30:.2f} GiB in {folder}; {free / 2**30:.2f} GiB are free; {hint}"
        )


class ImageFiles(torch.utils.data.Dataset[torch.Tensor]):
    """Images decoded from their files at every read, for training without the cache: the same
    preprocessing as the cache, ``images[i]`` is uint8 (c, size, size), ``images[index_tensor]``
    and ``images[a:b]`` stack them. A file that cannot be decoded is replaced by the next
    readable one (so batches keep their size) with a warning that counts such files."""

    def __init__(self, files: list[Path], size: int, grey: bool, crop: int = 0):
        if not files:
            raise UserError("no images to load")
        self.files, self.size, self.grey, self.crop = files, size, grey, crop
        self.unreadable = 0

    def __len__(self) -> int:
        return len(self.files)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(n, c, size, size), as for a tensor of the images."""
        return (len(self.files), 1 if self.grey else 3, self.size, self.size)

    def __getitem__(self, index: int | slice | torch.Tensor) -> torch.Tensor:
        if isinstance(index, int):
            return self._read(index)
        picks = range(len(self.files))[index] if isinstance(index, slice) else index.tolist()
        return torch.stack([self._read(i) for i in picks])

    def _read(self, index: int) -> torch.Tensor:
        for offset in range(len(self.files)):
            path = self.files[(index + offset) % len(self.files)]
            image = image_or_reason(path, self.size, self.grey, self.crop)
            if not isinstance(image, str):
                return torch.from_numpy(image.copy())  # PIL's buffer is read-only
            self.unreadable += 1
            warnings.warn(
                f"unreadable image file {path} ({image}) replaced by the next readable one "
                f"({self.unreadable} so far in this process)",
                stacklevel=2,
            )
        raise UserError(f"none of the {len(self.files)} image files could be read")


def class_folders(root: Path) -> list[tuple[str, list[Path]]]:
    """(class name, image files) of each sub-folder of ``root`` that holds images (at any depth),
    sorted by name: the classes of a conditional run. :class:`UserError` when images lie
    directly in ``root`` (they would have no class) or fewer than 2 sub-folders hold images."""
    if not root.is_dir():
        raise UserError(f"image folder not found: {root}")
    loose = [p for p in root.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in EXTENSIONS]
    if loose:
        raise UserError(
            f"--condition labels: {root} holds {len(loose)} image(s) outside class sub-folders, e.g. {loose[0].name}; "
            "put each class's images in a sub-folder named after it"
        )
    subfolders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    found = [(folder.name, files) for folder in subfolders if (files := list_images(folder))]
    if len(found) < 2:
        names = ", ".join(name for name, _ in found) or "none"
        raise UserError(
            f"--condition labels: {root} has {len(found)} class sub-folder(s) with images ({names}); "
            "a conditional WAE needs at least 2"
        )
    return found


def load_class_folders(
    root: Path, size: int, grey: bool = False, crop: int = 0, cache: bool = True, progress: bool | None = None
) -> ImageData:
    """Images of a folder of class sub-folders with their labels (the sub-folders' names, in
    sorted order): the last 10 % of each class's files are its test images, so that every
    class is in both splits. With ``cache`` each class is cached as an image folder is, then
    the classes are joined in memory; without, the files are decoded at every read."""
    from .data import ImageData

    classes = class_folders(root)
    for name, files in classes:
        if len(files) < 3:
            raise UserError(f"class sub-folder {root / name} holds {len(files)} image(s); at least 3 are needed")
    names = tuple(name for name, _ in classes)
    if cache:
        arrays = [split(images_array(files, size, grey, crop, progress)) for _, files in classes]
        y_train, y_test = (torch.cat([torch.full((len(part[i]),), c) for c, part in enumerate(arrays)]) for i in (0, 1))
        train, test = (torch.from_numpy(np.concatenate([part[i] for part in arrays])) for i in (0, 1))
        return ImageData(train, test, root.name, y_train, y_test, names)
    lists = [split(files) for _, files in classes]
    y_train, y_test = (torch.cat([torch.full((len(part[i]),), c) for c, part in enumerate(lists)]) for i in (0, 1))
    train_files, test_files = ([f for part in lists for f in part[i]] for i in (0, 1))
    test_images = ImageFiles(test_files, size, grey, crop)[:]
    return ImageData(ImageFiles(train_files, size, grey, crop), test_images, root.name, y_train, y_test, names)


def split(items: S, test_fraction: float = 0.1) -> tuple[S, S]:
    """(train, test) of a sequence of images or image files: the last ``test_fraction`` is the
    test set (at least one item, and at least two left to train on)."""
    held = max(1, int(round(len(items) * test_fraction)))
    if len(items) - held < 2:
        raise UserError(f"{len(items)} images are too few: at least 3 are needed")
    return items[:-held], items[-held:]


def celeba_files(root: Path) -> tuple[list[Path], list[Path]]:
    """(train, test) files of CelebA under ``root``: the official partition when
    ``list_eval_partition.txt`` is there, else the last 10 % of the sorted files as the test set."""
    images = root / "img_align_celeba" if (root / "img_align_celeba").is_dir() else root
    partition_file = next(
        (p for p in (root / "list_eval_partition.txt", images / "list_eval_partition.txt") if p.is_file()), None
    )
    if partition_file is None:
        files = list_images(images)
        if len(files) < 3:
            raise UserError(f"{images} holds {len(files)} images; at least 3 are needed")
        held = max(1, len(files) // 10)
        return files[:-held], files[-held:]
    train, test = [], []
    for number, line in enumerate(_text_of(partition_file).splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
            raise UserError(f"{partition_file}:{number}: expected 'FILE PARTITION' with partition 0, 1 or 2")
        if parts[1] == "0":
            train.append(images / parts[0])
        elif parts[1] == "2":
            test.append(images / parts[0])
    missing = [f for f in train + test if not f.is_file()]
    if missing:
        raise UserError(f"{len(missing)} files named in {partition_file} are missing, e.g. {missing[0]}")
    if len(train) < 2 or not test:
        raise UserError(f"{partition_file} names {len(train)} training and {len(test)} test images; too few")
    return train, test


def _text_of(path: Path) -> str:
    """A text file's contents; :class:`UserError` when it is not UTF-8 or cannot be read."""
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read {path} ({failure_reason(err)})") from None


def is_celeba(root: Path) -> bool:
    """Whether a folder looks like CelebA (an ``img_align_celeba`` folder or the split file)."""
    return (root / "img_align_celeba").is_dir() or (root / "list_eval_partition.txt").is_file()
