"""Quality against training minutes for one or more run folders: docs/img/quality-curve.png.

The left panel is the classifier-feature FD of prior samples at each per-epoch evaluation of
``wae train`` (2,000 samples against 2,000 test images). With ``--fid FOLDER``, a right panel
shows Inception FID of the run's checkpoints at some epochs: FOLDER holds one run folder per
epoch, ``eE`` (the checkpoint of epoch E with the run's config.json), each scored by ``wae
evaluate`` (``metrics.json``: prior samples) and, after ``wae fit-sampler``, ``wae evaluate
--sampler gmm`` (``metrics-gmm.json``); the minutes are those of the first run given.

    python scripts/quality_curve.py runs/demo runs/quality --out docs/img/quality-curve.png
    python scripts/quality_curve.py runs/demo-quiet --fid runs/curve --out docs/img/demo-fid-curve.png

``--speed N`` counts the minutes at N images/s instead of the logged speeds (a run trained
beside other work: its logged speeds are no figure); ``--machine`` names the machine on the axes,
``--samples`` the samples of each FID (default 2,000).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from wae.report import plain_log_labels  # noqa: E402


def curve(run: Path, speed: float | None = None) -> tuple[list[float], list[float], list[int]]:
    """(training minutes, fast FD, epoch) at each evaluation: minutes summed from the logged
    speed of each window of steps, or from ``speed`` images/s when given (evaluation time
    excluded)."""
    config = json.loads((run / "config.json").read_text())
    batch, every = config["train"]["batch_size"], config["train"]["log_every"]
    seconds, minutes, fd, epochs = 0.0, [], [], []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record.get("kind") == "train":
            seconds += every * batch / (speed or record["images_per_s"])
        elif record.get("kind") == "eval" and "fd_samples" in record:
            minutes.append(seconds / 60)
            fd.append(record["fd_samples"])
            epochs.append(int(record["epoch"]))
    return minutes, fd, epochs


def fid_points(folder: Path, minutes_at: dict[int, float]) -> dict[str, list[tuple[float, float, int]]]:
    """{"prior": [(minutes, FID, epoch)], "mixture": [...]} of the epoch folders ``eE``."""
    points: dict[str, list[tuple[float, float, int]]] = {"prior": [], "mixture": []}
    for sub in sorted(folder.glob("e*"), key=lambda p: int(re.sub(r"\D", "", p.name) or 0)):
        epoch = int(re.sub(r"\D", "", sub.name))
        for name, key in (("metrics.json", "prior"), ("metrics-gmm.json", "mixture")):
            path = sub / name
            if path.is_file() and epoch in minutes_at:
                fid = json.loads(path.read_text()).get("fid")
                if fid is not None:
                    points[key].append((minutes_at[epoch], fid, epoch))
    return points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--fid", type=Path, help="folder of per-epoch run folders eE scored by wae evaluate")
    parser.add_argument("--out", type=Path, default=Path("docs/img/quality-curve.png"))
    parser.add_argument("--speed", type=float, help="images/s to count the minutes at (default: the logged speeds)")
    parser.add_argument("--machine", default="2 cores, bf16", help="the machine, as the axes name it")
    parser.add_argument("--samples", type=int, default=2000, help="samples of each FID, as the axis names it")
    args = parser.parse_args()
    fig, axes = plt.subplots(1, 2 if args.fid else 1, figsize=(11 if args.fid else 6, 4), squeeze=False)
    ax = axes[0][0]
    for run in args.runs:
        minutes, fd, _ = curve(run, args.speed)
        preset = json.loads((run / "config.json").read_text())["preset"]
        ax.plot(minutes, fd, marker=".", label=f"{preset} ({run.name})")
    ax.set_xlabel(f"training minutes ({args.machine})")
    ax.set_ylabel("fast FD of 2,000 prior samples")
    ax.set_yscale("log")
    plain_log_labels(ax.yaxis)
    ax.grid(alpha=0.3)
    ax.legend()
    if args.fid:
        minutes, _, epochs = curve(args.runs[0], args.speed)
        points = fid_points(args.fid, dict(zip(epochs, minutes, strict=True)))
        right = axes[0][1]
        for key, marker in (("prior", "o"), ("mixture", "s")):
            if points[key]:
                xs, ys, _ = zip(*points[key], strict=True)
                right.plot(xs, ys, marker=marker, label=f"{key} samples")
                for x, y in zip(xs, ys, strict=True):
                    right.annotate(
                        f"{y:.1f}", (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8
                    )
                print(key, ", ".join(f"epoch {e}: {m:.1f} min, FID {f:.2f}" for m, f, e in points[key]))
        right.set_xlabel(f"training minutes of {args.runs[0].name} ({args.machine})")
        right.set_ylabel(f"Inception FID, {args.samples:,} samples")
        right.grid(alpha=0.3)
        right.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
