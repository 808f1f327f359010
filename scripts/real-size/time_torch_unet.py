#!/usr/bin/python3
"""The same full-size SD 1.5 inpainting UNet in torch eager, for comparison with `bench real-size`.

Builds UNet2DConditionModel at make_real_size_model.py's configuration (torch.manual_seed(0)), then times one
warm-up and N calls at the given batch (1: Maskflow's CPU default, guidance in two calls; 2: one batched call),
64x64 latents, 77 tokens, with torch's threads set to the machine's cores. Prints one JSON line.

Usage: /usr/bin/python3 scripts/real-size/time_torch_unet.py --diffusers-src PATH [--hfhub-src PATH] [--batch 2] [--calls 2]
"""
import argparse
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_real_size_model import UNET_CONFIG, import_diffusers  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--diffusers-src")
    parser.add_argument("--hfhub-src")
    parser.add_argument("--batch", type=int, choices=(1, 2), default=2)
    parser.add_argument("--calls", type=int, default=2, help="timed calls after the warm-up (1 to 10)")
    args = parser.parse_args()
    if not 1 <= args.calls <= 10:
        raise SystemExit(f"--calls must be from 1 to 10; got {args.calls}")
    unet_class, _ = import_diffusers(args)
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    unet = unet_class(**UNET_CONFIG).eval()
    generator = torch.Generator().manual_seed(1)
    sample = torch.randn(args.batch, 9, 64, 64, generator=generator)
    context = torch.randn(args.batch, 77, 768, generator=generator)
    timestep = torch.tensor([999])
    times = []
    with torch.no_grad():
        for _ in range(args.calls + 1):
            started = time.perf_counter()
            unet(sample, timestep, context)
            times.append(time.perf_counter() - started)
            print(f"call {len(times)}: {times[-1]:.1f} s", file=sys.stderr, flush=True)
    steady = sorted(times[1:])[len(times[1:]) // 2]
    print(json.dumps({
        "torch": torch.__version__, "threads": torch.get_num_threads(), "batch": args.batch,
        "firstCallSeconds": times[0], "callSeconds": steady, "calls": times,
        "peakRssBytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "loadAverage": " ".join(f"{v:.2f}" for v in os.getloadavg()),
    }))


if __name__ == "__main__":
    main()
