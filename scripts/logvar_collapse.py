"""Random encoders in WAEs (Rubenstein et al. 2018): without a penalty, a Gaussian encoder's
variances collapse towards zero (the encoder turns deterministic); an L1 penalty on the
log-variances keeps them from it. Trains WAE-MMD with a Gaussian encoder twice, with and
without the penalty (same seed, fast networks, MNIST), and plots the mean encoder
log-variance on test images after every epoch.

    python scripts/logvar_collapse.py [--epochs 10] [--l1 0.01] [--out runs/logvar]
Writes OUT/logvar-collapse.png and OUT/logvar-collapse.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from wae import fit
from wae.config import override, preset
from wae.report import new_figure
from wae.train import read_jsonl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--l1", type=float, default=0.01, help="weight of the log-variance penalty")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default="runs/logvar")
    args = parser.parse_args()
    out = Path(args.out)
    curves = {}
    for name, l1 in (("no penalty", 0.0), (f"L1 penalty {args.l1:g}", args.l1)):
        run = out / ("plain" if l1 == 0 else "l1")
        if not (run / "report.md").is_file():
            cfg = override(
                preset("mnist-fast", "mmd"),
                # the settings the documented figure was made with (mnist-fast of 2026-11-27)
                arch="fast",
                latent_dim=8,
                lam=10.0,
                cost="l2sq",
                cost_scale=0.05,
                lr=1e-3,
                fit_sampler="none",
                encoder="gaussian",
                logvar_l1=l1,
                epochs=args.epochs,
                eval_every=0,
                threads=args.threads,
            )
            fit(cfg, run, progress=False)
        curves[name] = [r for r in read_jsonl(run / "metrics.jsonl") if r.get("kind") == "eval"]
    fig = new_figure(figsize=(10, 3.6))
    axes = fig.subplots(1, 2)
    for name, evals in curves.items():
        epochs = [e["epoch"] for e in evals]
        axes[0].plot(epochs, [e["encoder_logvar_mean"] for e in evals], marker="o", label=name)
        axes[1].plot(epochs, [e["test_recon_mse"] for e in evals], marker="o", label=name)
    axes[0].set_ylabel("mean encoder log σ²(x), test images")
    axes[1].set_ylabel("test reconstruction MSE / pixel")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("WAE-MMD with a Gaussian encoder (fast net, MNIST, seed 0)")
    fig.tight_layout()
    fig.savefig(out / "logvar-collapse.png", dpi=100)
    rows = ["| epoch | " + " | ".join(f"log σ² ({n}) | test MSE ({n})" for n in curves) + " |"]
    rows.append("|---|" + "---|---|" * len(curves))
    for i, e in enumerate(next(iter(curves.values()))):
        cells = [f"{c[i]['encoder_logvar_mean']:.2f} | {c[i]['test_recon_mse']:.4f}" for c in curves.values()]
        rows.append(f"| {e['epoch']} | " + " | ".join(cells) + " |")
    (out / "logvar-collapse.md").write_text("\n".join(rows) + "\n")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
