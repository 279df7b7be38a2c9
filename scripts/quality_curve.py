"""The classifier-feature FD of prior samples (the per-epoch evaluation of ``wae train``: 2,000
samples against 2,000 test images) against training minutes, for one or more run folders:
docs/img/quality-curve.png.

    python scripts/quality_curve.py runs/demo runs/quality --out docs/img/quality-curve.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def curve(run: Path) -> tuple[list[float], list[float]]:
    """(training minutes, fast FD) at each evaluation: minutes summed from the logged speed of
    each window of steps (evaluation time excluded)."""
    config = json.loads((run / "config.json").read_text())
    batch, every = config["train"]["batch_size"], config["train"]["log_every"]
    seconds, minutes, fd = 0.0, [], []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record.get("kind") == "train":
            seconds += every * batch / record["images_per_s"]
        elif record.get("kind") == "eval" and "fd_samples" in record:
            minutes.append(seconds / 60)
            fd.append(record["fd_samples"])
    return minutes, fd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/img/quality-curve.png"))
    args = parser.parse_args()
    fig, ax = plt.subplots(figsize=(6, 4))
    for run in args.runs:
        minutes, fd = curve(run)
        preset = json.loads((run / "config.json").read_text())["preset"]
        ax.plot(minutes, fd, marker=".", label=f"{preset} ({run.name})")
    ax.set_xlabel("training minutes (2 cores, bf16)")
    ax.set_ylabel("fast FD of 2,000 prior samples")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
