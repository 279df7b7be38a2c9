"""The sample-quality ablation of docs/results.md: train one MNIST configuration, then score
its samples from the prior and from a Gaussian mixture fitted to the training codes.

One run per call; each appends one JSON line to ``--out``: the settings, the training wall
time and images/s, and for the final weights (and their exponential moving average, when
``--ema`` is given) the test MSE, the classifier-feature Fréchet distance (fast FD) of 10,000
prior and mixture samples and of the test reconstructions, precision/recall, and with
``--fid N`` the Inception FID of N prior and N mixture samples against the 10,000 test images.
``--curve`` adds the fast FD of 2,000 prior samples after every epoch (not counted in the
training time) to draw FD against training minutes.

    python scripts/quality_study.py --name w64 --arch w64-s1 --epochs 10 --ema 0.999
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from pathlib import Path

import torch

from wae import config as C
from wae import train as T
from wae.data import batches, load_mnist
from wae.evaluate import classifier_metrics, decode_prior, encode_all, test_pass
from wae.nets import ARCHITECTURES, Architecture
from wae.samplers import fit_gmm

ARCHS = {
    "fast": Architecture((32, 64, 128), (128, 64), 4, "stride2"),
    "fast-s1": Architecture((32, 64, 128), (128, 64, 32), 4, "stride1"),
    "fast-b1": Architecture((32, 64, 128), (128, 64, 32), 4, "stride1", blocks=1),
    "w48-s1": Architecture((48, 96, 192), (192, 96, 48), 4, "stride1"),
    "w64": Architecture((64, 128, 256), (256, 128), 4, "stride2"),
    "w64-s1": Architecture((64, 128, 256), (256, 128, 64), 4, "stride1"),
    "w64-b1": Architecture((64, 128, 256), (256, 128, 64), 4, "stride1", blocks=1),
    "w96-s1": Architecture((96, 192, 384), (384, 192, 96), 4, "stride1"),
}


def lr_lambda(schedule: str, total: int, warmup: int):
    """Multiplier of the base learning rate at step s."""

    def step_decay(s: int) -> float:  # mnist-fast: x0.5 at 60 %, x0.1 at 80 %
        return 1.0 if s < 0.6 * total else 0.5 if s < 0.8 * total else 0.1

    def cosine(s: int) -> float:
        if s < warmup:
            return (s + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (s - warmup) / max(1, total - warmup))))

    return {"step": step_decay, "cosine": cosine, "constant": lambda s: 1.0}[schedule]


def scores(model, data, sampler_codes, n: int, fid_n: int, seed: int) -> dict[str, float]:
    out: dict[str, float] = {}
    test = data.test.float() / 255
    _, recon, _ = test_pass(model, data.test, "01")
    out["test_mse"] = float(((recon - test) ** 2).mean())
    gmm = fit_gmm(sampler_codes, components=10, seed=seed)
    for name, sampler in (("prior", None), ("gmm", gmm)):
        images = decode_prior(model, n, "01", seed, sampler)
        m = classifier_metrics(test, images, recon if sampler is None else None)
        out[f"fd_{name}"] = m["fd_samples"]
        out[f"precision_{name}"] = m["precision"]
        out[f"recall_{name}"] = m["recall"]
        if "fd_reconstructions" in m:
            out["fd_recon"] = m["fd_reconstructions"]
        if fid_n:
            from wae.fid import fid, load_inception

            net = load_inception()
            out[f"fid_{name}"] = fid(net, images[:fid_n], test, "auto")["fid"]
            if sampler is None:
                out["fid_recon"] = fid(net, recon[:fid_n], test, "auto")["fid"]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", required=True)
    p.add_argument("--arch", default="fast", choices=sorted(ARCHS))
    p.add_argument("--latent-dim", type=int, default=8)
    p.add_argument("--epochs", type=float, default=10)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--beta1", type=float, default=0.5)
    p.add_argument("--schedule", default="step", choices=("step", "cosine", "constant"))
    p.add_argument("--warmup", type=int, default=0, help="warm-up steps of the cosine schedule")
    p.add_argument("--ema", type=float, default=0.0, help="decay of the weight average (0: none)")
    p.add_argument("--lam", type=float, default=10.0)
    p.add_argument("--cost", default="l2sq")
    p.add_argument("--cost-scale", type=float, default=0.05)
    p.add_argument("--objective", default="mmd")
    p.add_argument("--precision", default="bf16")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n", type=int, default=10_000, help="samples scored by the fast FD")
    p.add_argument("--fid", type=int, default=0, help="samples scored by Inception FID (0: none)")
    p.add_argument("--curve", action="store_true")
    p.add_argument("--save", type=Path, help="write the (EMA) state dict here")
    p.add_argument("--out", type=Path, default=Path("runs/study/results.jsonl"))
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    ARCHITECTURES[a.arch] = ARCHS[a.arch]
    cfg = C.override(
        C.preset("mnist-fast", a.objective),
        arch=a.arch,
        latent_dim=a.latent_dim,
        batch_size=a.batch_size,
        lr=a.lr,
        beta1=a.beta1,
        lam=a.lam,
        cost=a.cost,
        cost_scale=a.cost_scale,
        precision=a.precision,
        seed=a.seed,
        ema=a.ema,
    )
    data = load_mnist()
    per_epoch = len(data.train) // a.batch_size
    total = int(a.epochs * per_epoch)
    state = T.build(cfg, 1, 28, per_epoch)
    schedule = lr_lambda(a.schedule, total, a.warmup)
    state.scheduler = torch.optim.lr_scheduler.LambdaLR(state.optimizer, schedule)
    step_fn = {"gan": T.gan_step, "vae": T.vae_step}.get(a.objective, T.mmd_step)
    ema = state.ema  # the library's moving average (with its warm-up), updated after each step
    curve = []
    train_seconds = 0.0
    step = 0
    epoch = 0
    while step < total:
        start = time.perf_counter()
        state.model.train()
        for batch in batches(data.train, a.batch_size, a.seed, epoch):
            step_fn(state, batch)
            if ema is not None:
                ema.update_parameters(state.model)
            step += 1
            if step >= total:
                break
        train_seconds += time.perf_counter() - start
        epoch += 1
        print(f"{a.name}: epoch {epoch}, step {step}, {train_seconds:.0f} s", flush=True)
        if a.curve:
            model = ema.module if ema is not None else state.model
            images = decode_prior(model, 2000, "01", 1)
            fd = classifier_metrics(data.test.float() / 255, images)["fd_samples"]
            curve.append({"epoch": epoch, "minutes": train_seconds / 60, "fd_prior_2k": fd})
            print(json.dumps(curve[-1]), flush=True)
    record = {
        "name": a.name,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()},
        "steps": step,
        "train_seconds": train_seconds,
        "images_per_second": step * a.batch_size / train_seconds,
        "threads": a.threads,
        "curve": curve,
    }
    finals = [("", state.model)]
    if ema is not None:
        finals = [("raw_", state.model), ("", ema.module)]
    for prefix, model in finals:
        model = copy.deepcopy(model).float()
        codes = encode_all(model, data.train, "01")
        for key, value in scores(model, data, codes, a.n, a.fid if prefix == "" else 0, a.seed).items():
            record[prefix + key] = value
        if a.save and prefix == "":
            a.save.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"config": cfg.to_dict(), "model": model.state_dict()}, a.save)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    with a.out.open("a") as f:
        f.write(json.dumps(record) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k not in ("args", "curve")}, indent=None))


if __name__ == "__main__":
    main()
