"""Vector (tabular) data: loading, standardisation, the MLP auto-encoder on every objective,
resume, sampling in the file's units, and the metrics for vectors against known answers."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import wasserstein_distance

from wae import checkpoint as ckpt
from wae.config import UserError, override, preset
from wae.tables import (
    Standardiser,
    c2st_auc,
    correlation_error,
    data_mmd,
    from_array,
    gaussian_samples,
    held_out_rows,
    is_table_file,
    load_table,
    marginal_w1,
    standardiser_of,
)
from wae.train import fit, load_model

from .conftest import run_cli


def table_rows(n: int = 200, seed: int = 0) -> np.ndarray:
    """n rows of 5 correlated columns on different scales (two latent factors and noise)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 2))
    mix = np.array([[1.0, 0.5, 0.0, -1.0, 2.0], [0.0, 1.0, 1.0, 0.5, 0.0]])
    x = z @ mix + 0.1 * rng.normal(size=(n, 5))
    return x * np.array([1.0, 10.0, 0.1, 100.0, 1.0]) + np.array([0.0, 5.0, -3.0, 1000.0, 0.0])


def write_csv(path: Path, rows: np.ndarray, header: list[str] | None = None) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header or [f"c{j}" for j in range(rows.shape[1])])
        writer.writerows(rows.tolist())
    return path


def table_config(objective: str = "mmd", **settings: object):
    base = {"batch_size": 32, "epochs": 2, "precision": "fp32", "log_every": 1, "eval_size": 40, "mlp_width": 32}
    return override(preset("table", objective), **{**base, **settings})


# ----------------------------------------------------------------------------- loading


def test_csv_npy_and_npz_load_the_same_standardised_rows(tmp_path):
    rows = table_rows()
    write_csv(tmp_path / "t.csv", rows)
    np.save(tmp_path / "t.npy", rows)
    np.savez(tmp_path / "t.npz", x=rows)
    tables = [load_table(tmp_path / name) for name in ("t.csv", "t.npy", "t.npz")]
    train_rows, test_rows = held_out_rows(200, 0.2)
    assert (len(train_rows), len(test_rows)) == (160, 40) and not set(train_rows) & set(test_rows)
    for table in tables:
        assert table.train.shape == (160, 5) and table.test.shape == (40, 5) and table.size == 1
        assert table.channels == 5
        torch.testing.assert_close(table.train, tables[0].train)
    # fitted on the training split: mean 0 and (population) std 1 there, not on the test rows
    torch.testing.assert_close(tables[0].train.mean(0), torch.zeros(5), atol=1e-5, rtol=0)
    torch.testing.assert_close(tables[0].train.std(0, unbiased=False), torch.ones(5), atol=1e-5, rtol=0)
    std = tables[0].standardiser
    assert std is not None and std.columns == [f"c{j}" for j in range(5)]
    np.testing.assert_allclose(std.inverse(tables[0].test), rows[test_rows], rtol=1e-5, atol=1e-4)


def test_an_npz_with_a_test_array_keeps_its_split_and_table_files_are_told_from_images(tmp_path):
    rows = table_rows()
    np.savez(tmp_path / "t.npz", x_train=rows[:150], x_test=rows[150:])
    np.savez(tmp_path / "images.npz", x_train=np.zeros((10, 8, 8), dtype=np.uint8))
    table = load_table(tmp_path / "t.npz")
    assert (len(table.train), len(table.test)) == (150, 50)
    assert is_table_file(tmp_path / "t.npz") and not is_table_file(tmp_path / "images.npz")
    assert is_table_file(Path("x.csv")) and is_table_file(Path("x.npy"))


def test_constant_columns_are_dropped_with_a_counted_warning_and_put_back(tmp_path):
    rows = table_rows()
    rows = np.insert(rows, [1, 3], [[7.5, -2.0]], axis=1)  # columns 1 and 4 constant
    write_csv(tmp_path / "t.csv", rows)
    with pytest.warns(UserWarning, match="dropped 2 constant column"):
        table = load_table(tmp_path / "t.csv")
    assert table.standardiser is not None and table.standardiser.constants == {1: 7.5, 4: -2.0}
    assert table.train.shape[1] == 5
    back = table.standardiser.inverse(torch.zeros(3, 5))
    assert back.shape == (3, 7) and (back[:, 1] == 7.5).all() and (back[:, 4] == -2.0).all()
    again = Standardiser.from_payload(table.standardiser.to_payload())
    assert again.constants == table.standardiser.constants and again.kept == table.standardiser.kept


def test_a_csv_needs_a_header_and_blank_lines_before_it_are_skipped(tmp_path):
    rows = table_rows()
    path = tmp_path / "t.csv"
    # a first line of numbers (no header, or years as column names) is refused, not guessed at:
    # read as data or as names, either could be silently wrong
    for first in ("1.5,2,3,4,5", "1990,2000,2010,2020,2030", " 1e3 , nan,inf,-2,+.5"):
        path.write_text(first + "\n" + "\n".join(",".join(map(str, r)) for r in rows.tolist()) + "\n")
        with pytest.raises(UserError, match="line 1 \\(the header\\) is numbers, not column names.*add one"):
            load_table(path)
    # blank and whitespace-only lines before the header are skipped, as they are between rows
    write_csv(tmp_path / "h.csv", rows)
    path.write_text("\n  \n" + (tmp_path / "h.csv").read_text())
    torch.testing.assert_close(load_table(path).train, load_table(tmp_path / "h.csv").train)
    # names that Python's float() would read (digit separators, full-width digits) are names
    path.write_text("1_0,\uff12,c,d,e\n" + "\n".join(",".join(map(str, r)) for r in rows.tolist()) + "\n")
    assert load_table(path).standardiser.columns == ["1_0", "\uff12", "c", "d", "e"]
    path.write_text("a,b\n1,2\n3,4\n0_5,6\n7,8\n9,1\n")  # and as a cell, not a number
    with pytest.raises(UserError, match="line 4, column 'a' holds '0_5', not a number"):
        load_table(path)
    path.write_text("a,b\n1,2\n3,4\n\n5,nan\n7,8\n")  # a NaN is named by its own line, blank lines counted
    with pytest.raises(UserError, match="nan at line 5, column 'b'"):
        load_table(path)


@pytest.mark.parametrize(
    "column, too_large",
    [
        (np.r_[1e308, -1e308, np.zeros(198)], True),  # the spread overflows
        (np.r_[np.full(100, 1.7e308), np.full(100, 1.6e308)], True),  # the mean overflows
        (np.linspace(-1e200, 1e200, 200), True),  # the squares of the spread overflow
        (np.linspace(-1e150, 1e150, 200), None),  # huge but standardisable
        (np.random.default_rng(0).normal(size=200) * 1e-170, False),  # the spread underflows
        (np.r_[np.zeros(199), 5e-324], False),  # subnormal
        (np.random.default_rng(0).normal(size=200) * 1e-150, None),  # tiny but standardisable
    ],
)
def test_values_too_large_or_too_close_to_standardise_are_one_user_error(column, too_large, tmp_path):
    rows = table_rows()
    rows[:, 2] = column
    if too_large is None:
        assert np.isfinite(from_array(rows).train.numpy()).all()
        return
    what = "too large" if too_large else "too close together"
    with pytest.raises(UserError, match=f"column 'x2' holds values {what} to standardise"):
        from_array(rows)
    subnormal = ((column != 0) & (np.abs(column) < np.finfo(np.float64).tiny)).any()
    # a CSV cell that reads as a subnormal number is refused as it is read (it lost precision)
    with pytest.raises(
        UserError, match="holds '5e-324', out of range" if subnormal else f"column 'c2' holds values {what}"
    ):
        load_table(write_csv(tmp_path / "t.csv", rows))


def test_a_test_row_far_outside_the_training_rows_is_one_user_error():
    rows = table_rows()
    test = rows[:10].copy()
    test[3, 1] = 1e300  # finite in float64, overflows float32 once standardised
    with pytest.raises(UserError, match="test split row 3 \\(from 0\\), column 'x1'.*too far from the training rows"):
        from_array(rows, test)


def test_a_held_out_row_far_outside_is_named_where_the_user_finds_it(tmp_path):
    # the held-out split is a shuffle of the file's rows: the error names the CSV's line (or the
    # row of the array), not the row's index in the shuffled split
    rows = table_rows()
    _, test_index = held_out_rows(len(rows), 0.2)
    far = int(test_index[3])
    rows[far, 1] = 1e300
    with pytest.raises(UserError, match=f"test split, line {far + 2}, column 'c1'.*too far from the training rows"):
        load_table(write_csv(tmp_path / "t.csv", rows))  # the header is line 1
    with pytest.raises(UserError, match=f"test split, row {far} of rows \\(from 0\\), column 'x1'"):
        from_array(rows)
    np.save(tmp_path / "t.npy", rows)
    with pytest.raises(UserError, match=f"test split, row {far} of the file \\(from 0\\), column 'x1'"):
        load_table(tmp_path / "t.npy")


def test_a_damaged_stored_standardisation_is_a_user_error():
    good = Standardiser.fit(table_rows(), [f"c{j}" for j in range(5)]).to_payload()
    for change in ({"std": torch.zeros(5, dtype=torch.float64)}, {"kept": [0, 1]}, {"mean": "x"}, {"columns": None}):
        with pytest.raises(UserError, match="standardisation"):
            Standardiser.from_payload({**good, **change})


BAD_TABLES = [
    ("non-numeric cell", "a,b\n1,2\n3,x\n4,5\n6,7\n", "line 3, column 'b' holds 'x', not a number"),
    ("ragged row", "a,b\n1,2\n3\n4,5\n6,7\n", "line 3 has 1 fields; the header has 2"),
    ("NaN", "a,b\n1,2\n3,nan\n4,5\n6,7\n", "NaN or infinite values"),
    ("infinity", "a,b\n1,2\n3,inf\n4,5\n6,7\n", "NaN or infinite values"),
    ("empty cell", "a,b\n1,2\n3,\n4,5\n6,7\n", "not a number"),
    ("three rows", "a,b\n1,2\n3,4\n5,6\n", "has 3 rows; a table needs at least 4"),
    ("header only", "a,b\n", "has 0 rows"),
    ("empty file", "", "is empty"),
    ("every column constant", "a,b\n1,2\n1,2\n1,2\n1,2\n1,2\n", "every column of the table is constant"),
]


@pytest.mark.parametrize("text,message", [c[1:] for c in BAD_TABLES], ids=[c[0] for c in BAD_TABLES])
def test_bad_tables_are_one_line_user_errors(tmp_path, text, message):
    (tmp_path / "t.csv").write_text(text)
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        load_table(tmp_path / "t.csv")


def test_bad_arrays_are_user_errors(tmp_path):
    np.save(tmp_path / "s.npy", np.array([["a", "b"]] * 5))
    np.save(tmp_path / "three.npy", np.zeros((5, 2, 2)))
    np.save(tmp_path / "o.npy", np.array([[{}]] * 5, dtype=object), allow_pickle=True)
    np.savez(tmp_path / "w.npz", x_train=table_rows(), x_test=np.zeros((5, 4)))
    for name, message in [
        ("s.npy", "a table needs numbers"),
        ("three.npy", "a table is 2-D"),
        ("o.npy", "Python objects"),
        ("w.npz", "x_test has 4 columns; x_train has 5"),
    ]:
        with pytest.raises(UserError, match=message):
            load_table(tmp_path / name)
    with pytest.raises(UserError, match="at least 4"):
        from_array(np.zeros((3, 2)))
    with pytest.raises(UserError, match="numpy array or a torch.Tensor"):
        from_array([[1.0, 2.0]] * 5)


def csv_text(rows: np.ndarray, header: str = "c0,c1,c2,c3,c4") -> str:
    return header + "\n" + "\n".join(",".join(map(repr, r)) for r in rows.tolist()) + "\n"


@pytest.mark.parametrize("value", [1e7, 1e20, 1e37, -1e300])
def test_a_value_over_a_million_standard_deviations_out_is_one_user_error(value, tmp_path):
    # finite in float32 once standardised, but its square (summed over columns and a batch) is
    # not: training went on and reported a test MSE of inf and an MMD of NaN (null in JSON)
    rows = table_rows()
    _, test_index = held_out_rows(len(rows), 0.2)
    far = int(test_index[2])
    rows[far, 1] = 5.0 + value * rows[:, 1].std()  # column c1: mean 5, spread about 10
    message = f"test split, line {far + 2}, column 'c1'.*too far from the training rows.*at most 1e\\+06"
    with pytest.raises(UserError, match=message):
        load_table(write_csv(tmp_path / "t.csv", rows))
    with pytest.raises(
        UserError, match=f"test split, row {far} of rows \\(from 0\\), column 'x1'.*standard deviations"
    ):
        from_array(rows)
    test = table_rows(10, seed=1)
    test[4, 3] = 1000.0 + value * table_rows()[:, 3].std()  # column x3: mean 1000, spread about 100
    with pytest.raises(UserError, match="test split row 4 \\(from 0\\), column 'x3'.*too far"):
        from_array(table_rows(), test)
    code, err = run_cli(["train", "--data", "t.csv", "--precision", "fp32", "--no-progress", "--out", "run"], tmp_path)
    assert code == 2 and "wae train: error: " in err and "Traceback" not in err and not (tmp_path / "run").exists()


def test_a_value_within_a_million_standard_deviations_is_kept():
    rows = table_rows()
    _, test_index = held_out_rows(len(rows), 0.2)
    rows[int(test_index[0]), 0] = 9e5 * rows[:, 0].std()
    data = from_array(rows)
    assert np.isfinite(data.test.numpy()).all() and float(data.test.abs().max()) > 5e5


@pytest.mark.parametrize(
    "text, line",
    [
        ("a,b,c\n1,2,3\n,,\n4,5,6\n", 3),  # a row of separators: three missing values, not a blank line
        ("a,b,c\n1,2,3\n4,5,6\n,\n", 4),  # and with a field missing as well
        ("a,b,c\n1,2,3\n  ,\t, \n4,5,6\n", 3),  # cells of spaces
        ('a\n1\n""\n2\n', 3),  # a one-column row with an empty cell, as Python's csv writes it
    ],
)
def test_a_row_of_empty_cells_is_an_error_not_a_blank_line(text, line, tmp_path):
    (tmp_path / "t.csv").write_text(text + "7,8,9\n1,1,1\n" if text.startswith("a,") else text + "4\n5\n")
    with pytest.raises(UserError, match=f"line {line} holds only empty cells"):
        load_table(tmp_path / "t.csv")


def test_only_blank_lines_are_skipped(tmp_path):
    rows = table_rows(20)
    text = csv_text(rows).splitlines()
    (tmp_path / "t.csv").write_text("\n".join([text[0], "", *text[1:5], "   ", "\t", *text[5:], ""]) + "\n\n")
    data = load_table(tmp_path / "t.csv")
    assert len(data.train) + len(data.test) == 20


@pytest.mark.parametrize(
    "header, message",
    [
        ("a,,c,d,e", "line 1 \\(the header\\) has no name for column 2 \\(counted from 1\\): name every column"),
        ("a,b, ,d,", "has no name for columns 3, 5 "),
        (",a,b,c,d", "has no name for column 1 .*pandas' to_csv .*index=False"),  # df.to_csv(path) with its index
        (",0,1,2,3", "has no name for column 1 .*index=False"),  # and an array's frame: numbers as names
        ("a,a,a,d,e", "gives columns 1, 2, 3 \\(counted from 1\\) one name, 'a'; column names must be unique"),
        ("a, a,a ,d,e", "gives columns 1, 2, 3 \\(counted from 1\\) one name, 'a'"),  # once stripped
        ("a,b,a,b,e", "gives columns 1, 3 \\(counted from 1\\) one name, 'a', and 1 more name\\(s\\) repeated"),
    ],
)
def test_header_names_must_be_given_and_unique(header, message, tmp_path):
    (tmp_path / "t.csv").write_text(csv_text(table_rows(20), header))
    with pytest.raises(UserError, match=message):
        load_table(tmp_path / "t.csv")
    (tmp_path / "t.csv").write_text("\n" + csv_text(table_rows(20), header))  # the header's own line
    with pytest.raises(UserError, match=message.replace("line 1", "line 2")):
        load_table(tmp_path / "t.csv")


def test_a_line_of_separators_before_the_header_is_not_skipped(tmp_path):
    (tmp_path / "t.csv").write_text(",,,,\n" + csv_text(table_rows(20)))
    with pytest.raises(UserError, match="line 1 \\(the header\\) has no name for columns 1, 2, 3, 4, 5"):
        load_table(tmp_path / "t.csv")


def test_lines_are_the_files_lines_after_a_quoted_multi_line_cell(tmp_path):
    # a quoted cell may span lines: a row is named by the line where it starts, as an editor shows
    # it, not by counting records (which put every later row a line too early)
    path = tmp_path / "t.csv"
    header = '"a\nmore",b,c'
    path.write_text(header + "\n1,2,3\n4,5,6\n7,8,9\n\n1,2,3\n4,5,x\n")  # the header is lines 1-2
    with pytest.raises(UserError, match="line 8, column 'c' holds 'x'"):
        load_table(path)
    path.write_text(header + '\n1,2,3\n4,"5\n",6\n7,8,9\n1,2,nan\n4,5,6\n')  # and a data cell spanning two
    with pytest.raises(UserError, match="nan at line 7, column 'c'"):
        load_table(path)
    path.write_text(header + '\n1,2,3\n4,5,6\n7,8,9\n1,2,3\n"1e-400",5,6\n')
    with pytest.raises(UserError, match="line 7, column 'a\\\\nmore' holds '1e-400'"):  # the name on one line
        load_table(path)
    rows = table_rows()
    _, test_index = held_out_rows(len(rows), 0.2)
    far = int(test_index[5])
    rows[far, 2] = 1e30
    write_csv(path, rows, ["c0", "c1\nsecond line", "c2", "c3", "c4"])
    with pytest.raises(UserError, match=f"test split, line {far + 3}, column 'c2'"):
        load_table(path)
    rows[far, 2] = 0.0
    write_csv(path, rows, ["c0", "c1\nsecond line", "c2", "c3", "c4"])
    assert load_table(path).standardiser.columns[1] == "c1\nsecond line"


@pytest.mark.parametrize(
    "cells, message",
    [
        (["1e-400", "2e-400", "-3e-400"], "line 2, column 'c2' holds '1e-400', out of range: nonzero and below"),
        (["1e-310", "2e-310", "3e-310"], "holds '1e-310', out of range: .*reads as 1e-310"),  # subnormal: imprecise
        (["0", "0.5e-330", "1"], "line 3, column 'c2' holds '0.5e-330', out of range"),
        (["1", "2", "1e999"], "line 4, column 'c2' holds '1e999', out of range: beyond float64's largest"),
        (["1", "-2e400", "3"], "line 3, column 'c2' holds '-2e400', out of range"),
    ],
)
def test_numbers_out_of_float64_range_are_refused_not_rounded(cells, message, tmp_path):
    # a column of 1e-400, 2e-400, ... read as 0.0 and was dropped as constant without a word
    rows = table_rows(20)
    lines = csv_text(rows).splitlines()
    for i, cell in enumerate(cells, 1):
        parts = lines[i].split(",")
        parts[2] = cell
        lines[i] = ",".join(parts)
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=message):
        load_table(tmp_path / "t.csv")


def test_zeros_written_any_way_are_zeros(tmp_path):
    zeros = ["0", "0.0", "-0", "0e5", "+0.000e-999", ".0", "-0.0E+400", "00"]
    text = "a,b\n" + "".join(f"{z},{j}\n" for j, z in enumerate(zeros)) + "1,9\n"
    (tmp_path / "t.csv").write_text(text)
    data = load_table(tmp_path / "t.csv")
    back = data.standardiser.inverse(torch.cat([data.train, data.test]))
    np.testing.assert_allclose(np.sort(back[:, 0]), [0.0] * len(zeros) + [1.0], atol=1e-6)  # float32


@pytest.mark.parametrize("name", ["t.tsv", "t.txt", "images.npz"])
def test_preset_table_with_a_file_that_is_not_a_table_says_what_a_table_is(name, tmp_path):
    if name.endswith(".npz"):
        np.savez(tmp_path / name, x_train=np.zeros((8, 4, 4, 1), dtype=np.uint8))
    else:
        (tmp_path / name).write_text("a\tb\n" + "".join(f"{j}\t{j * j}\n" for j in range(8)))
    code, err = run_cli(["train", "--preset", "table", "--data", name, "--no-progress", "--out", "run"], tmp_path)
    assert code == 2 and "Traceback" not in err and not (tmp_path / "run").exists()
    assert f"wae train: error: {name} is not a table: a table is a .csv, .npy or .npz file" in err
    assert "use --preset table" not in err


# ----------------------------------------------------------------------------- training


@pytest.mark.parametrize("objective", ["mmd", "gan", "vae", "swd", "sinkhorn", "cw"])
def test_every_objective_trains_on_vectors(tmp_path, objective):
    data = from_array(table_rows(), held_out=0.2)
    lam = {"swd": 0.1, "sinkhorn": 0.01, "vae": 1.0}.get(objective, 10.0)
    cfg = table_config(objective, epochs=12, lam=lam, lr=3e-3)
    result = fit(cfg, tmp_path / "run", data=data, progress=False, log=lambda _: None)
    assert result.step == 12 * 5
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    recon = [r["recon"] for r in records if r["kind"] == "train"]
    assert np.mean(recon[-5:]) < 0.7 * np.mean(recon[:5])  # per row, summed over 5 unit-variance columns
    assert {"w1_mean", "corr_error_rms", "data_mmd"} <= set(result.metrics) and "fd_samples" not in result.metrics
    assert not list((tmp_path / "run").glob("*.png")) and (tmp_path / "run" / "report.md").is_file()
    payload = ckpt.load(ckpt.run_checkpoints(tmp_path / "run")[0])
    assert payload["data"]["channels"] == 5 and "table" in payload["data"]


def test_a_table_run_resumes_bitwise(tmp_path):
    data = from_array(table_rows())
    full = fit(table_config(max_steps=8, epochs=3), tmp_path / "full", data=data, progress=False, log=lambda _: None)
    fit(table_config(max_steps=7, epochs=3), tmp_path / "part", data=data, progress=False, log=lambda _: None)
    resumed = fit(table_config(max_steps=8, epochs=3), tmp_path / "part", data=data, resume=True, progress=False)
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert resumed.step == 8 and all(torch.equal(a[k], b[k]) for k in a)


def test_the_mlp_and_images_do_not_mix(tiny_data):
    with pytest.raises(UserError, match="dataset table"):
        from wae.config import validate

        validate(override(preset("table"), arch="small"))
    with pytest.raises(UserError, match="mlp architecture trains on tables"):
        from wae.train import check_fits

        check_fits(override(preset("table"), batch_size=32), tiny_data)


def test_cli_trains_samples_and_evaluates_a_csv_in_its_units(tmp_path):
    rows = np.insert(table_rows(), 2, 4.25, axis=1)  # a constant column, dropped then put back
    write_csv(tmp_path / "t.csv", rows, ["a", "b", "flat", "c", "d", "e"])
    argv = [
        "train",
        "--data",
        "t.csv",
        "--epochs",
        "2",
        "--batch-size",
        "32",
        "--mlp-width",
        "32",
        "--fit-sampler",
        "gmm",
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code, err = run_cli([*argv, "--precision", "fp32", "--no-progress", "--out", "run"], tmp_path)
    assert code == 0, err
    assert "dropped 1 constant column(s) (flat)" in err and "grids:" not in err
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (cfg["preset"], cfg["data"]["dataset"], cfg["model"]["arch"]) == ("table", "table", "mlp")
    assert cfg["data"]["fingerprint"].startswith("table:")
    code, err = run_cli(["sample", "run", "--n", "50", "--out", "s.csv"], tmp_path)
    assert code == 0, err
    with open(tmp_path / "s.csv") as f:
        sampled = list(csv.reader(f))
    assert sampled[0] == ["a", "b", "flat", "c", "d", "e"] and len(sampled) == 51
    values = np.array(sampled[1:], dtype=float)
    assert (values[:, 2] == 4.25).all()
    assert abs(values[:, 4].mean() - 1000.0) < 100.0  # the file's units, not standardised ones
    assert run_cli(["sample", "run", "--n", "5", "--sampler", "gmm", "--out", "s.npy"], tmp_path)[0] == 0
    assert (tmp_path / "run" / "sampler-gmm.npz").is_file() and not list((tmp_path / "run").glob("*.png"))
    assert np.load(tmp_path / "s.npy").shape == (5, 6)
    code, err = run_cli(["evaluate", "run", "--n", "200"], tmp_path)
    assert code == 0, err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 0.0 <= metrics["c2st_auc"] <= 1.0 and "fid" not in metrics and "sharpness_samples" not in metrics
    report = (tmp_path / "run" / "report.html").read_text()
    assert "<h2>Columns</h2>" in report and "<h2>Images</h2>" not in report and "<td>flat</td>" in report
    assert standardiser_of(tmp_path / "run").columns[2] == "flat"
    assert load_model(tmp_path / "run")[0].channels == 5
    code, err = run_cli(["compare", "run", "--out", "cmp"], tmp_path)
    assert code == 0, err
    assert (
        "C2ST AUC" in (tmp_path / "cmp" / "compare.md").read_text() and not (tmp_path / "cmp" / "compare.png").exists()
    )
    newest = str(ckpt.run_checkpoints(tmp_path / "run")[0])
    assert run_cli(["sample", newest, "--n", "3", "--out", "c.csv"], tmp_path)[0] == 0  # a checkpoint file alone
    for command in (
        ["sample", "run", "--out", "s.png"],
        ["sample", newest, "--out", "s.png"],
        ["reconstruct", "run", "--out", "r.png"],
        ["interpolate", newest, "--out", "i.png"],
    ):
        code, err = run_cli(command, tmp_path)
        assert code == 2 and err.count("\n") == 1, err


def test_python_api_fits_a_table_from_an_array_or_a_file(tmp_path):
    import wae

    rows = table_rows()
    run = wae.fit_table(rows, epochs=2, batch_size=32, precision="fp32", mlp_width=16, latent_dim=3)
    assert run.step == 2 * 5 and run.model.channels == 5 and run.model.latent_dim == 3
    assert run.model.decode(torch.zeros(4, 3)).shape == (4, 5)
    given = wae.fit_table(rows[:150], test_rows=rows[150:], epochs=1, batch_size=50, precision="fp32")
    assert given.step == 3
    np.savez(tmp_path / "t.npz", x_train=rows[:150], x_test=rows[150:])
    from_file = wae.fit_table(tmp_path / "t.npz", out=tmp_path / "run", objective="vae", epochs=1, batch_size=50)
    assert from_file.step == 3 and from_file.model.encoder.gaussian
    assert standardiser_of(tmp_path / "run").features == 5
    with pytest.raises(UserError, match="test_rows goes with an array"):
        wae.fit_table(tmp_path / "t.npz", test_rows=rows)
    with pytest.raises(UserError, match="NaN"):
        wae.fit_table(np.full((10, 2), np.nan))


# ----------------------------------------------------------------------------- metrics


def test_marginal_w1_equals_scipy_column_by_column():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(50, 3)), rng.exponential(size=(70, 3)) + 0.3
    expected = [wasserstein_distance(a[:, j], b[:, j]) for j in range(3)]
    np.testing.assert_allclose(marginal_w1(a, b), expected, rtol=1e-12)
    np.testing.assert_allclose(marginal_w1(a, a + 2.0), [2.0] * 3, rtol=1e-12)  # a shift moves W1 by it
    assert marginal_w1(a, a).max() == 0.0


def test_correlation_error_known_answers():
    rng = np.random.default_rng(2)
    z = rng.normal(size=(4000, 1))
    together = np.hstack([z, z])  # correlation 1
    apart = rng.normal(size=(4000, 2))  # correlation ~0
    errors = correlation_error(together, apart)
    assert errors["corr_error_max"] == pytest.approx(1.0, abs=0.05)
    assert errors["corr_error_rms"] == pytest.approx(1.0, abs=0.05)
    assert correlation_error(together, together) == {"corr_error_rms": 0.0, "corr_error_max": 0.0}
    flat = np.hstack([z, np.ones((4000, 1))])  # a constant column: correlation 0, no NaN
    assert correlation_error(flat, apart)["corr_error_max"] < 0.1


def test_c2st_is_chance_for_one_distribution_and_one_for_two():
    rng = np.random.default_rng(3)
    same = c2st_auc(rng.normal(size=(300, 4)), rng.normal(size=(300, 4)), seed=0)
    apart = c2st_auc(rng.normal(size=(300, 4)), rng.normal(size=(300, 4)) + 3.0, seed=0)
    assert abs(same - 0.5) < 0.1 and apart > 0.99


def test_data_mmd_is_about_zero_for_one_distribution_and_grows_with_a_shift():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(400, 3)), rng.normal(size=(400, 3))
    small, shifted = data_mmd(a, b), data_mmd(a, b + 1.0)
    assert abs(small) < 0.03 and shifted > 30 * abs(small) and data_mmd(a, b + 2.0) > shifted


def test_the_gaussian_baseline_matches_the_training_moments():
    rows = table_rows(2000)
    drawn = gaussian_samples(rows, 20000, seed=0)
    np.testing.assert_allclose(drawn.mean(0), rows.mean(0), atol=0.05 * rows.std(0).max())
    np.testing.assert_allclose(np.corrcoef(drawn, rowvar=False), np.corrcoef(rows, rowvar=False), atol=0.03)


def test_hostile_pass_fit_sampler_label_tiny_test_split_and_resume_flags(tmp_path, capsys):
    """Cases of the hostile pass: fit-sampler on a table run drew an image grid (traceback after
    the sampler was written); --label on a table run was ignored; a test split under 4 rows
    crashed the classifier two-sample test; --resume refused --fit-sampler and --log, which it
    advertises, because the checkpoint comparison kept its own list of resumable settings."""
    from wae.cli import main

    write_csv(tmp_path / "t.csv", table_rows()[:14])
    run = tmp_path / "run"
    tiny = ["--batch-size", "4", "--precision", "fp32", "--no-progress", "--fit-sampler", "none"]
    assert main(["train", "--data", str(tmp_path / "t.csv"), *tiny, "--max-steps", "2", "--out", str(run)]) == 0
    assert main(["fit-sampler", str(run), "--components", "2"]) == 0
    assert (run / "sampler-gmm.npz").is_file() and not list(run.glob("samples-*.png"))
    assert main(["sample", str(run), "--label", "3", "--out", str(tmp_path / "s.csv")]) == 2
    assert not (tmp_path / "s.csv").exists()
    assert main(["evaluate", str(run), "--n", "50", "--no-fid"]) == 0  # 3 test rows: no C2ST, no crash
    assert json.loads((run / "metrics.json").read_text())["c2st_auc"] is None
    assert main(["train", "--resume", str(run), "--max-steps", "3", "--fit-sampler", "gmm", "--no-progress"]) == 0
