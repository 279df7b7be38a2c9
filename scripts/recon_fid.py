"""Inception FID of a run's reconstructions of its test images against those test images: how
well the decoder draws from codes of real images. It is a reference level, not a floor: draws
from a mixture fitted to the training codes have scored about 3 points below it (the demo at
d_z = 16: 14.37 against 17.51; mnist-quality: 11.93 against 14.55), perhaps because they avoid
the odd test digits that the decoder reconstructs poorly (our reading, not tested;
docs/results.md, "Sample quality").

    python scripts/recon_fid.py runs/demo
"""

from __future__ import annotations

import json
import sys

from wae import load_model
from wae.data import to_model_range, to_unit_range
from wae.evaluate import test_pass
from wae.fid import fid, load_inception
from wae.runs import load_data


def main() -> None:
    run = sys.argv[1]
    model, cfg = load_model(run)
    test = load_data(cfg.data).test
    _, recon, _ = test_pass(model, test, cfg.data.range)
    reference = to_unit_range(to_model_range(test, cfg.data.range), cfg.data.range)
    result = fid(load_inception(), recon, reference, "auto")
    print(json.dumps({"run": run, "fid_reconstructions": result["fid"], "seconds": result["fid_seconds"]}))


if __name__ == "__main__":
    main()
