"""The floor of the sample-quality distances at a given sample size: random MNIST training
images, which come from the test images' distribution, scored like samples against the 10,000
test images (Inception FID, and the classifier-feature Fréchet distance with precision/recall).
A model's figure at the same n means little unless it is well above this.

    python scripts/fid_floor.py [--n 2000] [--precision fp32] [--seed 0] [--no-fid]
Prints one JSON line. The test statistics come from the FID cache when `wae evaluate` has
filled it.
"""

from __future__ import annotations

import argparse
import json

import torch

from wae.data import load_mnist, to_model_range
from wae.evaluate import classifier_metrics
from wae.fid import fid, load_inception


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="training images scored (default 2000)")
    parser.add_argument("--precision", choices=["fp32", "bf16", "auto"], default="fp32")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random pick of training images")
    parser.add_argument("--no-fid", action="store_true", help="only the classifier-feature figures")
    args = parser.parse_args()
    data = load_mnist()
    pick = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(args.seed))[: args.n]
    images, test = to_model_range(data.train[pick]), to_model_range(data.test)
    out: dict[str, float] = {"n": float(args.n)}
    figures = classifier_metrics(test, images)
    out.update({key: figures[key] for key in ("fd_samples", "precision", "recall")})
    if not args.no_fid:
        out.update(fid(load_inception(), images, test, args.precision))  # with its fid_seconds
    print(json.dumps(out))


if __name__ == "__main__":
    main()
