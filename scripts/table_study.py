"""WAE-MMD against the VAE baseline and a Gaussian fitted to the data, on tables that ship inside
scikit-learn (no download): docs/results.md, "Tables".

For each table the rows are written to a CSV and trained on with the table preset (an MLP,
columns standardised on the training split, 80/20 seeded split), one run per seed and objective,
timed; then 2,000 rows of each model (and of the Gaussian with the training rows' mean and
covariance) are scored against the test split: the mean and largest per-column Wasserstein-1
distance, the RMS and largest correlation error, the classifier two-sample AUC and the MMD in
data space (wae.tables). The training rows themselves, scored the same way, give the floor
that finite samples allow.

    OMP_NUM_THREADS=1 taskset -c 1 python scripts/table_study.py --out runs/table-study

10-20 minutes on one contended core (its CPU seconds are steadier than its wall time);
writes OUT/table-study.md and OUT/table-study.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

import wae
from wae.evaluate import evaluate_table
from wae.tables import gaussian_samples, load_table, table_metrics

KEYS = [
    ("w1_mean", "W1 mean"),
    ("w1_max", "W1 max"),
    ("corr_error_rms", "corr. error RMS"),
    ("corr_error_max", "corr. error max"),
    ("c2st_auc", "C2ST AUC"),
    ("data_mmd", "MMD²"),
    ("seconds", "training s (wall)"),
    ("cpu_seconds", "training s (CPU)"),
]


def write_table(name: str, path: Path) -> None:
    """A scikit-learn table (its features, not its target) as a CSV with a header."""
    from sklearn import datasets

    loaded = getattr(datasets, f"load_{name}")()
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([str(c) for c in loaded.feature_names])
        writer.writerows(loaded.data.tolist())


def summary(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def study(name: str, out: Path, seeds: list[int], samples: int, epochs: int | None) -> dict[str, list[dict[str, Any]]]:
    """Every method's figures on one table, one dict per seed."""
    path = out / f"{name}.csv"
    write_table(name, path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant columns: none in these tables
        data = load_table(path)
    results: dict[str, list[dict[str, Any]]] = {"training rows (floor)": [], "Gaussian fit": []}
    for seed in seeds:
        results["training rows (floor)"].append(table_metrics(data.train, data.test, seed))
        start, cpu_start = time.perf_counter(), time.process_time()
        drawn = gaussian_samples(data.train, samples, seed)
        timing = {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu_start}
        results["Gaussian fit"].append({**table_metrics(drawn, data.test, seed), **timing})
        for objective, label in (("mmd", "WAE-MMD"), ("vae", "VAE")):
            run_dir = out / f"{name}-{objective}-seed{seed}"
            if run_dir.exists():
                shutil.rmtree(run_dir)  # this script's own run folder from an earlier pass
            settings: dict[str, Any] = {"seed": seed, "threads": 1}
            if epochs is not None:
                settings["epochs"] = epochs
            start, cpu_start = time.perf_counter(), time.process_time()
            run = wae.fit_table(path, out=run_dir, objective=objective, **settings)
            seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
            metrics = evaluate_table(run.model, data.test, samples, seed)
            timing = {"seconds": seconds, "cpu_seconds": cpu_seconds, "steps": run.step}
            results.setdefault(label, []).append({**metrics, **timing})
            print(
                f"{name} {label} seed {seed}: W1 {metrics['w1_mean']:.3f}, "
                f"AUC {metrics['c2st_auc']:.3f}, {seconds:.0f} s"
            )
    return results


def markdown(name: str, rows: int, columns: int, results: dict[str, list[dict[str, Any]]]) -> str:
    lines = [
        f"**{name}** ({rows} rows, {columns} columns):",
        "",
        "| model | " + " | ".join(label for _, label in KEYS) + " |",
        "|---|" + "---|" * len(KEYS),
    ]
    for method, runs in results.items():
        cells = [summary([r[key] for r in runs]) if key in runs[0] else "" for key, _ in KEYS]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/table-study", help="folder for the CSVs, runs and results")
    parser.add_argument("--tables", nargs="+", default=["breast_cancer", "wine"], help="sklearn.datasets.load_NAME")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--samples", type=int, default=2000, help="rows drawn from each model")
    parser.add_argument("--epochs", type=int, default=None, help="default: the table preset's")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    text, everything = [], {}
    for name in args.tables:
        results = study(name, out, args.seeds, args.samples, args.epochs)
        data_rows = list(csv.reader(open(out / f"{name}.csv")))
        text.append(markdown(name, len(data_rows) - 1, len(data_rows[0]), results))
        everything[name] = results
    report = "\n".join(text)
    (out / "table-study.md").write_text(report)
    (out / "table-study.json").write_text(json.dumps(everything, indent=1, default=float) + "\n")
    print(report)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
