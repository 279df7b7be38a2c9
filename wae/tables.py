"""Vector (tabular) data: loading a table, standardising its columns, and metrics for vectors.

A table is a file whose rows are samples: a ``.csv`` with a header row, a 2-D ``.npy``, or an
``.npz`` with a 2-D ``x_train`` (or ``x``) and optionally ``x_test``. Without a test array a
seeded fraction of the rows is held out. Columns are standardised with the mean and standard
deviation of the training split (:class:`Standardiser`, stored in every checkpoint and inverted
on sampling); a column constant on the training split is dropped with a warning and put back,
at its value, in every sample.

The metrics compare two samples of rows (n, D) and (m, D) in standardised units, so that
figures of different columns can be averaged: per-column Wasserstein-1 distances of the
marginals, the error of the correlation matrix, a classifier two-sample test (C2ST; AUC 0.5:
indistinguishable, Lopez-Paz & Oquab 2017) and the MMD in data space.
"""

from __future__ import annotations

import csv
import math
import re
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .config import UserError, check_data_file, check_memory, failure_reason, finite_real, json_repr
from .data import ImageData, npz_array, open_npz, training_key
from .divergences import mmd_imq

TABLE_SUFFIXES = (".csv", ".npy", ".npz")
MIN_ROWS = 4  # two training rows (a standard deviation) and two test rows (a test MMD)
MAX_COLUMNS = 65536
# the most standard deviations a standardised value may lie from the training mean. A training
# value lies within sqrt(n - 1) of it (n rows), so only rows outside the training split (a test
# split) come near; at 1e6 a square is 1e12, and sums of squares over MAX_COLUMNS columns and any
# batch (the reconstruction cost, the kernel distances of the MMD) stay far inside float32's range
# (3.4e38), where a value of 1e20 standard deviations squares to infinity: the test MSE reads inf
MAX_STANDARDISED = 1e6
SPLIT_SEED = 0  # the held-out rows are the same for every run of a table


@dataclass
class Standardiser:
    """The map between a table's columns and the model's inputs: the kept columns (those not
    constant on the training split) minus their training mean, over their training standard
    deviation. ``columns``: every column's name; ``kept``: indices of the model's D columns;
    ``mean``, ``std``: (D,); ``constants``: the value of each dropped column, by index."""

    columns: list[str]
    kept: list[int]
    mean: np.ndarray
    std: np.ndarray
    constants: dict[int, float] = field(default_factory=dict)

    @staticmethod
    def fit(train: np.ndarray, columns: list[str]) -> Standardiser:
        """Fitted to the training rows (n, C); :class:`UserError` when every column is constant."""
        constant = train.min(0) == train.max(0)
        kept = [j for j in range(train.shape[1]) if not constant[j]]
        if not kept:
            raise UserError(
                f"every column of the table is constant on the training rows ({len(columns)} columns; a 2-D "
                "array or a CSV is read as a table, rows as samples: images need 3-D or 4-D arrays)"
            )
        values = train[:, kept]
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            mean, std = values.mean(0), values.std(0)
        too_large = ~(np.isfinite(mean) & np.isfinite(std))
        too_small = ~too_large & (std < np.finfo(np.float64).tiny)  # 0 or subnormal: 1/std overflows
        for bad, what in ((too_large, "values too large"), (too_small, "values too close together")):
            if bad.any():
                j = int(np.argmax(bad))
                raise UserError(
                    f"column '{columns[kept[j]]}' holds {what} to standardise in float64 (its mean or spread "
                    f"{'overflows' if what.endswith('large') else 'underflows'}; largest magnitude "
                    f"{np.abs(values[:, j]).max():.3g}): rescale it first"
                )
        return Standardiser(
            columns=list(columns),
            kept=kept,
            mean=mean,
            std=std,
            constants={j: float(train[0, j]) for j in range(train.shape[1]) if constant[j]},
        )

    @property
    def features(self) -> int:
        """D, the width of the model's input and output."""
        return len(self.kept)

    def transform(self, rows: np.ndarray, split: str = "", places: list[str] | None = None) -> Tensor:
        """Rows (n, C) in the file's units -> standardised kept columns (n, D), float32;
        :class:`UserError` when a value lies more than :data:`MAX_STANDARDISED` (1e6) standard
        deviations from the training mean, beyond which the squares summed by the losses may
        overflow float32 (an infinite test MSE, a NaN MMD), naming the row where the user can
        find it: ``places[i]`` (e.g. "line 7" of a CSV whose rows were shuffled into splits),
        else its index in ``rows`` within ``split`` (e.g. "test split")."""
        with np.errstate(over="ignore", invalid="ignore"):
            standard = (rows[:, self.kept] - self.mean) / self.std
        bad = ~(np.abs(standard) <= MAX_STANDARDISED)  # NaN and infinity too
        if bad.any():
            row, col = np.argwhere(bad)[0]
            place = (
                f"{split + ', ' if split else ''}{places[row]}"
                if places
                else f"{split + ' ' if split else ''}row {row} (from 0)"
            )
            raise UserError(
                f"{place}, column '{_shown(self.columns[self.kept[col]])}': "
                f"{rows[row, self.kept[col]]:.3g} is too far from the training rows (mean {self.mean[col]:.3g}, "
                f"std {self.std[col]:.3g}: {abs(standard[row, col]):.3g} standard deviations; at most "
                f"{MAX_STANDARDISED:.0e}, so that the losses stay finite in float32) to standardise"
            )
        return torch.from_numpy(standard.astype(np.float32))

    def inverse(self, x: Tensor | np.ndarray) -> np.ndarray:
        """Standardised rows (n, D) -> rows (n, C) in the file's units (float64), the dropped
        constant columns put back at their values."""
        values = np.asarray(x.detach().cpu().double() if isinstance(x, Tensor) else x, dtype=np.float64)
        out = np.empty((len(values), len(self.columns)))
        out[:, self.kept] = values * self.std + self.mean
        for j, value in self.constants.items():
            out[:, j] = value
        return out

    def to_payload(self) -> dict[str, Any]:
        """Plain containers and tensors (``torch.load(weights_only=True)``-safe)."""
        return {
            "columns": list(self.columns),
            "kept": list(self.kept),
            "mean": torch.from_numpy(self.mean.astype(np.float64)),
            "std": torch.from_numpy(self.std.astype(np.float64)),
            "constant_columns": sorted(self.constants),
            "constant_values": [self.constants[j] for j in sorted(self.constants)],
        }

    @staticmethod
    def from_payload(payload: Any) -> Standardiser:
        """Inverse of :meth:`to_payload`; :class:`UserError` for a damaged or crafted entry."""
        try:
            columns = [str(c) for c in payload["columns"]]
            kept = [int(j) for j in payload["kept"]]
            mean = payload["mean"].double().numpy()
            std = payload["std"].double().numpy()
            constants = {
                int(j): float(v) for j, v in zip(payload["constant_columns"], payload["constant_values"], strict=True)
            }
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise UserError(f"checkpoint: the table's standardisation is damaged ({failure_reason(err)})") from None
        every = sorted([*kept, *constants])
        shapes_fit = mean.shape == std.shape == (len(kept),) and every == list(range(len(columns)))
        if not shapes_fit or not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
            raise UserError("checkpoint: the table's standardisation does not fit its columns")
        return Standardiser(columns, kept, mean, std, constants)


@dataclass
class TableData(ImageData):
    """Training and test rows, standardised: ``train`` (n, D) and ``test`` (m, D) float32, and
    the :class:`Standardiser` that made them. ``channels`` is D (the model's input width) and
    ``size`` is 1, so that code written for images sizes the model from them."""

    standardiser: Standardiser | None = None

    @property
    def size(self) -> int:
        return 1


def is_table_file(path: Path) -> bool:
    """Whether ``--data PATH`` names a table: a .csv or .npy, or an .npz whose ``x_train`` (or
    ``x``) array is 2-D (an image .npz holds 3-D or 4-D arrays)."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".npy"):
        return True
    if suffix != ".npz" or not path.is_file() or not zipfile.is_zipfile(path):  # a FIFO would block it
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            key = "x_train.npy" if "x_train.npy" in names else "x.npy" if "x.npy" in names else None
            if key is None:
                return False
            with archive.open(key) as member:
                shape, _, _ = _npy_header(member)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return False  # data.load_npz says what is wrong with it
    return len(shape) == 2


def _npy_header(f: Any) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    version = np.lib.format.read_magic(f)
    read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    if version not in read_header:
        raise ValueError(f"npy format version {version}")
    return read_header[version](f)


def _numeric(
    array: np.ndarray, where: str, header: list[str] | None = None, lines: list[int] | None = None
) -> np.ndarray:
    """A 2-D numeric array as float64, checked: :class:`UserError` for another shape, dtype,
    no rows or columns, and NaN or infinite values (naming the first: by the CSV's line, from
    ``lines``, and its ``header`` when given, else by row and column counted from 0)."""
    if array.dtype.kind not in "biuf":
        raise UserError(f"{where} has dtype {array.dtype}; a table needs numbers (bool, int or float)")
    if array.ndim != 2:
        raise UserError(f"{where} has shape {tuple(array.shape)}; a table is 2-D (rows, columns)")
    if array.shape[1] == 0 or array.shape[1] > MAX_COLUMNS:
        raise UserError(f"{where} has {array.shape[1]} columns; give 1 to {MAX_COLUMNS}")
    values = array.astype(np.float64)
    if array.dtype.kind == "f" and array.dtype.itemsize > 8:  # numpy's longdouble: beyond float64's range
        lost = (np.isinf(values) & np.isfinite(array)) | ((values == 0) & (array != 0))
        if lost.any():
            row, col = np.argwhere(lost)[0]
            raise UserError(
                f"{where} holds a value that float64 cannot hold (row {row}, column {col}, from 0: "
                f"{array[row, col]!r} would read as {values[row, col]:g}): scale the column"
            )
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        place = (
            f"line {lines[row]}, column '{_shown(header[col])}'"
            if header and lines
            else f"row {row}, column {col}, from 0"
        )
        raise UserError(f"{where} holds NaN or infinite values (the first: {values[row, col]} at {place})")
    return values


def _read_npy(path: Path) -> np.ndarray:
    try:
        with open(path, "rb") as f:
            shape, _, dtype = _npy_header(f)
    except (OSError, ValueError, EOFError) as err:
        raise UserError(f"{path} is not a readable .npy file ({failure_reason(err)})") from None
    if dtype.hasobject:
        raise UserError(f"{path} holds Python objects (a pickled array), which are never loaded; give numbers")
    check_memory(2 * math.prod(shape) * 8, f"{path} (shape {tuple(shape)}, {dtype})")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise UserError(f"{path} is damaged ({failure_reason(err)})") from None


def _read_csv(path: Path) -> tuple[np.ndarray, list[str], list[int]]:
    """The numbers of a CSV, its column names (its first line that is not blank) and the line of
    each row (the line where its record starts, as an editor shows it: a quoted cell may span
    lines); :class:`UserError`, naming the line (and column), when the header is numbers rather
    than names (a header is required: taking it as data or as names could both be wrong without
    a word) or has an empty or a repeated name, for a ragged row, a row of empty cells (only
    blank lines are skipped), a cell that is not a plain decimal number, and a number out of
    float64's range: beyond its largest, or nonzero below its smallest normal number (2.2e-308),
    which would read as infinity, or as 0 or a subnormal without a word."""
    check_memory(16 * path.stat().st_size, f"{path} ({path.stat().st_size:,} bytes)")
    reader: Any = None
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header: list[str] | None = None
            header_line = 0
            records = _records(reader)
            for line, row in records:
                if not _is_blank(row):
                    header, header_line = row, line
                    break
            if header is None:
                raise UserError(f"{path} is empty; a table needs a header row and rows of numbers")
            if all(_is_number(cell) for cell in header):
                raise UserError(
                    f"{path}: line {header_line} (the header) is numbers, not column names; a table CSV needs a header "
                    f"row: add one (e.g. {','.join(f'x{j}' for j in range(min(len(header), 3)))}"
                    f"{',...' if len(header) > 3 else ''})"
                )
            names = [h.strip() for h in header]
            _check_names(path, header_line, names)
            rows: list[list[float]] = []
            lines: list[int] = []
            for line, row in records:
                if _is_blank(row):
                    continue
                if not any(cell.strip() for cell in row):
                    raise UserError(
                        f"{path}: line {line} holds only empty cells ({len(row)}); a table has no missing values: "
                        "drop the row or fill it in"
                    )
                if len(row) != len(header):
                    raise UserError(f"{path}: line {line} has {len(row)} fields; the header has {len(header)}")
                bad = next((j for j, cell in enumerate(row) if not _is_number(cell)), None)
                if bad is not None:
                    raise UserError(
                        f"{path}: line {line}, column '{_shown(names[bad])}' holds {row[bad][:30]!r}, not a number "
                        "(a table must be numeric: encode categories as numbers first)"
                    )
                values = [float(cell) for cell in row]
                for j, value in enumerate(values):
                    if (abs(value) < _TINY and (value != 0 or _nonzero(row[j]))) or (
                        math.isinf(value) and not _INFINITY.fullmatch(row[j].strip())
                    ):
                        small = abs(value) < _TINY
                        raise UserError(
                            f"{path}: line {line}, column '{_shown(names[j])}' holds {row[j].strip()[:30]!r}, out of "
                            f"range: {'nonzero and below' if small else 'beyond'} float64's "
                            f"{'smallest normal number (2.2e-308)' if small else 'largest number (1.8e308)'}, "
                            f"it reads as {value!r}: rescale the column"
                        )
                rows.append(values)
                lines.append(line)
    except (UnicodeDecodeError, csv.Error) as err:
        at = f", line {reader.line_num}" if isinstance(err, csv.Error) and reader is not None else ""
        why = f"{err}{at}" if isinstance(err, csv.Error) else failure_reason(err)  # csv's words say what
        raise UserError(f"{path} is not a readable UTF-8 CSV file ({why})") from None
    array = np.array(rows, dtype=np.float64).reshape(len(rows), len(header))
    return array, names, lines


def _records(reader: Any) -> Any:
    """(first line, record) of each record of a ``csv.reader``: a record starts on the line
    after the one where the previous record ended (``reader.line_num``), blank lines included
    (each is a record of its own)."""
    start = 1
    for row in reader:
        yield start, row
        start = reader.line_num + 1


def _is_blank(row: list[str]) -> bool:
    """Whether a CSV record is a blank line: an empty line or one of spaces only. A line of
    separators (",,") is a row of empty cells, and so is '""' (a single empty cell, as Python's
    csv module writes it)."""
    return not row or (len(row) == 1 and row[0] != "" and not row[0].strip())


def _check_names(path: Path, line: int, names: list[str]) -> None:
    """:class:`UserError` for a header (its ``names``, stripped, on ``line``) with an empty or a
    repeated name: a column without a name is often an index written along (pandas' to_csv),
    which would be trained on as a feature; two columns of one name cannot be told apart in the
    samples."""
    empty = [j + 1 for j, name in enumerate(names) if not name]
    if empty:
        hint = (
            "; an unnamed first column is often the index pandas' to_csv writes, which would be trained on as a "
            "feature: write the file with to_csv(..., index=False), or name the column"
            if empty[0] == 1 and len(names) > 1
            else ": name every column"
        )
        raise UserError(
            f"{path}: line {line} (the header) has no name for column{'s' if len(empty) > 1 else ''} "
            f"{_listed(empty)} (counted from 1){hint}"
        )
    seen: dict[str, list[int]] = {}
    for j, name in enumerate(names):
        seen.setdefault(name, []).append(j + 1)
    repeated = {name: at for name, at in seen.items() if len(at) > 1}
    if repeated:
        name, at = next(iter(repeated.items()))
        more = f", and {len(repeated) - 1} more name(s) repeated" if len(repeated) > 1 else ""
        raise UserError(
            f"{path}: line {line} (the header) gives columns {_listed(at)} (counted from 1) one name, "
            f"'{_shown(name)}'{more}; column names must be unique (spaces around a name do not count)"
        )


def _listed(numbers: list[int]) -> str:
    shown = ", ".join(map(str, numbers[:10]))
    return shown + (f", ... ({len(numbers)} in all)" if len(numbers) > 10 else "")


def _shown(name: str) -> str:
    """A column name as an error message shows it: on one line (a quoted name may hold a line
    break), control characters escaped."""
    return name if name.isprintable() else name.encode("unicode_escape").decode("ascii")


_TINY = float(np.finfo(np.float64).tiny)  # the smallest normal float64, 2.2e-308
_INFINITY = re.compile(r"[+-]?(inf|infinity)", re.IGNORECASE | re.ASCII)


def _nonzero(cell: str) -> bool:
    """Whether a numeric CSV cell writes a nonzero number: a digit 1-9 before its exponent
    ("0e5", "-0.0" are zero; "1e-400" is not, whatever it reads as)."""
    return re.search(r"[1-9]", re.split(r"[eE]", cell, maxsplit=1)[0]) is not None


# a plain decimal number, or nan / inf as numpy and pandas write them; not Python's wider float()
# syntax (digit separators "1_0", non-ASCII digits), which would read names as numbers
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(nan|inf|infinity)", re.IGNORECASE | re.ASCII)


def _is_number(cell: str) -> bool:
    """Whether a CSV cell is a number (:data:`_NUMBER`, surrounding spaces allowed); an empty
    cell is not."""
    return _NUMBER.fullmatch(cell.strip()) is not None


def row_places(index: np.ndarray, lines: list[int] | None, where: str) -> list[str]:
    """Where each row of a split lies in what the user gave: row ``index[i]`` of the file's
    rows is "line L" of a CSV (``lines``: the line of each data row), else "row I of ``where``
    (from 0)"; the splits are shuffled, so a row's place in a split says nothing to the user."""
    if lines is not None:
        return [f"line {lines[i]}" for i in index]
    return [f"row {i} {where} (from 0)" for i in index]


def held_out_rows(n: int, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(training, test) row indices of a table of ``n`` rows without a test split: a shuffle
    seeded by SPLIT_SEED, ``fraction`` of the rows (at least 2) held out, in file order.
    :class:`UserError` for a fraction that is not a number > 0 and < 1 (data.held_out's bounds:
    NaN and inf were a ValueError and an OverflowError of numpy's, 1.0 a table of no training
    rows)."""
    if (real := finite_real(fraction)) is None or not 0 < real < 1:
        raise UserError(f"held_out must be a number > 0 and < 1; got {json_repr(fraction)}")
    held = max(2, round(real * n))
    order = np.random.default_rng(SPLIT_SEED).permutation(n)
    return np.sort(order[held:]), np.sort(order[:held])


def load_table(path: str | Path, held_out: float = 0.2) -> TableData:
    """The rows of a table file (see the module docstring), split and standardised.

    Raises :class:`UserError` for a missing or unreadable file, non-numeric cells, a ragged CSV,
    a CSV row of empty cells, a CSV header with an empty or a repeated name, a CSV number out of
    float64's range (see :func:`_read_csv`), NaN or infinite values, a value more than
    :data:`MAX_STANDARDISED` standard deviations from the training mean, fewer than MIN_ROWS
    rows (or a split with fewer than 2 rows either side), a test array of another width, and a
    table whose every column is constant; warns (counting them) when constant columns are
    dropped."""
    path = Path(path)
    check_data_file(path)
    suffix = path.suffix.lower()
    test: np.ndarray | None = None
    lines: list[int] | None = None  # the line of each data row, for a CSV
    if suffix == ".csv":
        raw, columns, lines = _read_csv(path)
        train = _numeric(raw, str(path), columns, lines)
    elif suffix == ".npy":
        train = _numeric(_read_npy(path), str(path))
        columns = [f"x{j}" for j in range(train.shape[1])]
    elif suffix == ".npz":
        train, test = _read_npz(path)
        columns = [f"x{j}" for j in range(train.shape[1])]
    else:
        raise UserError(f"{path}: a table is a .csv, .npy or .npz file")
    places: list[list[str] | None] = [None, None]  # the file's own splits are in its order
    if test is None:
        if len(train) < MIN_ROWS:
            raise UserError(f"{path} has {len(train)} rows; a table needs at least {MIN_ROWS}")
        train_rows, test_rows = held_out_rows(len(train), held_out)
        if len(train_rows) < 2:
            raise UserError(f"{path}: {len(train)} rows leave {len(train_rows)} for training; lower --held-out")
        train, test = train[train_rows], train[test_rows]
        places = [row_places(index, lines, "of the file") for index in (train_rows, test_rows)]
    if len(train) < 2 or len(test) < 2:
        raise UserError(f"{path}: {len(train)} training and {len(test)} test rows; each needs at least 2")
    standardiser = Standardiser.fit(train, columns)
    if standardiser.constants:
        names = ", ".join(columns[j] for j in sorted(standardiser.constants))
        warnings.warn(
            f"{path}: dropped {len(standardiser.constants)} constant column(s) ({names[:200]}); "
            "samples put their value back",
            stacklevel=2,
        )
    data = TableData(
        standardiser.transform(train, "training split", places[0]),
        standardiser.transform(test, "test split", places[1]),
        path.stem,
    )
    data.standardiser = standardiser
    return data


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """(training rows, test rows or None) of a table .npz, checked."""
    with open_npz(path) as f:
        key = training_key(f, path)
        train = _numeric(npz_array(f, key, path), f"{path}: '{key}'")
        test = _numeric(npz_array(f, "x_test", path), f"{path}: 'x_test'") if "x_test" in f else None
    if test is not None and test.shape[1] != train.shape[1]:
        raise UserError(f"{path}: x_test has {test.shape[1]} columns; x_train has {train.shape[1]}")
    return train, test


def from_array(rows: Any, test: Any = None, held_out: float = 0.2) -> TableData:
    """A table given in Python: a numpy array or tensor (n, C) of numbers, optionally test
    rows (m, C); checked and standardised as :func:`load_table` does."""
    arrays: list[np.ndarray | None] = []
    for value, name in ((rows, "rows"), (test, "test")):
        if value is None and name == "test":
            arrays.append(None)
            continue
        if isinstance(value, Tensor):
            value = value.detach().cpu().double().numpy()
        if not isinstance(value, np.ndarray):
            raise UserError(f"{name} must be a numpy array or a torch.Tensor; got {type(value).__name__}")
        arrays.append(_numeric(value, name))
    train, test_rows = arrays
    if train is None:  # not reached: rows of None are refused above as not an array
        raise UserError("rows must be a numpy array or a torch.Tensor; got NoneType")
    places: list[list[str] | None] = [None, None]
    if test_rows is None:
        if len(train) < MIN_ROWS:
            raise UserError(f"rows: {len(train)} rows; a table needs at least {MIN_ROWS}")
        train_index, test_index = held_out_rows(len(train), held_out)
        train, test_rows = train[train_index], train[test_index]
        places = [row_places(index, None, "of rows") for index in (train_index, test_index)]
    elif test_rows.shape[1] != train.shape[1]:
        raise UserError(f"test has {test_rows.shape[1]} columns; rows have {train.shape[1]}")
    if len(train) < 2 or len(test_rows) < 2:
        raise UserError(f"{len(train)} training and {len(test_rows)} test rows; each needs at least 2")
    standardiser = Standardiser.fit(train, [f"x{j}" for j in range(train.shape[1])])
    if standardiser.constants:
        warnings.warn(f"dropped {len(standardiser.constants)} constant column(s); samples put them back", stacklevel=2)
    data = TableData(
        standardiser.transform(train, "training split", places[0]),
        standardiser.transform(test_rows, "test split", places[1]),
        "array",
    )
    data.standardiser = standardiser
    return data


def write_rows(path: Path, rows: np.ndarray, columns: list[str]) -> bytes:
    """The bytes of ``rows`` (n, C) as ``path``'s format: a .csv with a header of ``columns``
    (17 significant digits, so that the numbers read back exactly) or a .npy (float64)."""
    import io

    buffer = io.StringIO() if path.suffix.lower() == ".csv" else io.BytesIO()
    if isinstance(buffer, io.StringIO):
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[repr(float(v)) for v in row] for row in rows])
        return buffer.getvalue().encode()
    np.save(buffer, np.asarray(rows, dtype=np.float64))
    return buffer.getvalue()


# ----------------------------------------------------------------------------- metrics


def marginal_w1(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Wasserstein-1 distance between the marginals of each column of samples a (n, D) and
    b (m, D), as (D,): the integral of |F_a - F_b| over the line, F the empirical CDFs (exact;
    equal to ``scipy.stats.wasserstein_distance`` column by column)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    out = np.empty(a.shape[1])
    for j in range(a.shape[1]):
        x, y = np.sort(a[:, j]), np.sort(b[:, j])
        points = np.sort(np.concatenate([x, y]))
        gaps = np.diff(points)
        cdf_x = np.searchsorted(x, points[:-1], side="right") / len(x)
        cdf_y = np.searchsorted(y, points[:-1], side="right") / len(y)
        out[j] = float(np.sum(np.abs(cdf_x - cdf_y) * gaps))
    return out


def correlations(x: np.ndarray) -> np.ndarray:
    """Pearson correlation matrix (D, D) of samples (n, D); a column without spread has
    correlation 0 with the others (and 1 with itself)."""
    x = np.asarray(x, dtype=np.float64)
    centred = x - x.mean(0)
    norms = np.sqrt((centred**2).sum(0))
    scaled = np.divide(centred, norms, out=np.zeros_like(centred), where=norms > 0)
    corr = scaled.T @ scaled
    np.fill_diagonal(corr, 1.0)
    return corr


def correlation_error(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """How far the correlation matrices of a (n, D) and b (m, D) are apart: ``corr_error_fro``,
    the Frobenius norm of their difference over its off-diagonal entries, divided by
    sqrt(D (D - 1)) (the root-mean-square error of one correlation), and ``corr_error_max``, the
    largest absolute difference. 0 for one column."""
    d = np.asarray(a).shape[1]
    diff = correlations(a) - correlations(b)
    pairs = d * (d - 1)
    return {
        "corr_error_rms": float(np.sqrt((diff**2).sum() / pairs)) if pairs else 0.0,
        "corr_error_max": float(np.abs(diff).max()),
    }


def c2st_auc(real: np.ndarray, fake: np.ndarray, seed: int = 0) -> float:
    """Classifier two-sample test (Lopez-Paz & Oquab, ICLR 2017): the ROC AUC of a random
    forest (scikit-learn, 100 trees, seeded) telling rows of ``real`` (n, D) from as many of
    ``fake`` (m, D), each half of the pooled rows scored by a forest fitted on the other half.
    0.5: the classifier cannot tell them apart; 1: it always can. A forest, not gradient
    boosting, as its leaves may hold one row: test splits of tables are often tens of rows.
    Needs at least 4 rows on each side."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    n = min(len(real), len(fake))
    if n < 4:
        raise ValueError("the classifier two-sample test needs at least 4 rows on each side")
    real = np.asarray(real, dtype=np.float64)[rng.permutation(len(real))[:n]]
    fake = np.asarray(fake, dtype=np.float64)[rng.permutation(len(fake))[:n]]
    x = np.concatenate([real, fake])
    y = np.concatenate([np.ones(n), np.zeros(n)])
    halves = np.zeros(2 * n, dtype=bool)  # each half holds n // 2 (or so) rows of either side
    halves[rng.permutation(n)[: n // 2]] = True
    halves[n + rng.permutation(n)[: n // 2]] = True
    scores = np.empty(2 * n)
    for fit_on in (halves, ~halves):
        classifier = RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=1)
        classifier.fit(x[fit_on], y[fit_on])
        scores[~fit_on] = classifier.predict_proba(x[~fit_on])[:, 1]
    return float(roc_auc_score(y, scores))


def data_mmd(a: np.ndarray | Tensor, b: np.ndarray | Tensor) -> float:
    """Unbiased MMD^2 between rows a (n, D) and b (m, D) with the multi-scale IMQ kernel of
    the WAE penalty, C = 2 D (unit variance per standardised column)."""
    x, y = (torch.as_tensor(np.asarray(v, dtype=np.float32)) if not isinstance(v, Tensor) else v for v in (a, b))
    return float(mmd_imq(x.float(), y.float(), 1.0))


def table_metrics(
    samples: np.ndarray | Tensor, test: np.ndarray | Tensor, seed: int = 0, c2st: bool = True
) -> dict[str, float]:
    """The sample figures of a table run, samples (n, D) against the test rows (m, D), both
    standardised: ``w1_mean`` and ``w1_max`` over the columns and ``w1_<j>`` for column j (the
    model's j-th column), ``corr_error_rms`` and ``corr_error_max``, ``data_mmd`` and, with
    ``c2st``, ``c2st_auc``."""
    a = samples.detach().cpu().double().numpy() if isinstance(samples, Tensor) else np.asarray(samples)
    b = test.detach().cpu().double().numpy() if isinstance(test, Tensor) else np.asarray(test)
    w1 = marginal_w1(a, b)
    metrics = {"w1_mean": float(w1.mean()), "w1_max": float(w1.max())}
    metrics.update({f"w1_{j}": float(v) for j, v in enumerate(w1)})
    metrics.update(correlation_error(a, b))
    metrics["data_mmd"] = data_mmd(a, b)
    if c2st:  # undefined (null) below the 4 rows a side the test needs: a tiny test split
        metrics["c2st_auc"] = c2st_auc(b, a, seed) if min(len(a), len(b)) >= 4 else float("nan")
    return metrics


def gaussian_samples(train: np.ndarray | Tensor, n: int, seed: int = 0) -> np.ndarray:
    """``n`` rows from the Gaussian with the mean and covariance of the training rows (n, D):
    the baseline every generative model of a table should beat."""
    x = train.detach().cpu().double().numpy() if isinstance(train, Tensor) else np.asarray(train, dtype=np.float64)
    rng = np.random.default_rng(seed)
    return rng.multivariate_normal(x.mean(0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1]), size=n)


def standardiser_of(run: str | Path) -> Standardiser:
    """The :class:`Standardiser` stored in a table run's checkpoint (a run folder or a
    checkpoint file); :class:`UserError` when the run is not a table run."""
    from .runs import read_checkpoint

    payload, path = read_checkpoint(run)
    data = payload.get("data")
    if not isinstance(data, dict) or "table" not in data:
        raise UserError(f"{path} is not the checkpoint of a table run (no standardisation in it)")
    return Standardiser.from_payload(data["table"])
