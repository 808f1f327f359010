"""
Generator goldens: torch.randn on the CPU generator over many seeds and shapes, the way diffusers draws
(torch.manual_seed, torch.Generator("cpu").manual_seed, successive draws from one generator).

    /usr/bin/python3 test/parity/torch_randn_goldens.py                                 # torch-randn-avx2.json
    ATEN_CPU_CAPABILITY=default /usr/bin/python3 test/parity/torch_randn_goldens.py     # torch-randn-default.json

ATEN_CPU_CAPABILITY=default makes torch dispatch its portable kernels instead of the AVX2 ones; the file
name records which kernel made the values. test/torch-generator.test.ts replays them on TorchGenerator.
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from golden_io import f32_base64  # noqa: E402

KERNEL = "default" if os.environ.get("ATEN_CPU_CAPABILITY") == "default" else "avx2"
OUT = os.path.join(os.path.dirname(__file__), "..", "fixtures", "diffusers-parity", f"torch-randn-{KERNEL}.json")
SEEDS = [0, 1, 2, 42, 1234, 31337, 2**31 - 1, 2**32 - 1, 2**32 + 5, 17123564234, 2**53 - 1, 2**64 - 1]
# Under 16 elements torch takes its scalar double path; from 16 the 16-wide Box–Muller, with a recomputed tail.
SHAPES = [[1], [7], [15], [16], [17], [31], [33], [100], [1000], [1, 4, 8, 8], [2, 4, 12, 16]]
LATENT_SEEDS = [0, 42]  # a full SD 1.5 latent, 1×4×64×64, for two seeds


def main():
    print("torch", torch.__version__, "kernel", KERNEL, file=sys.stderr)
    cases = []
    for seed in SEEDS:
        for shape in SHAPES + ([[1, 4, 64, 64]] if seed in LATENT_SEEDS else []):
            torch.manual_seed(seed)
            cases.append({"kind": "manual_seed", "seed": str(seed),
                          "draws": [{"shape": shape, "values": f32_base64(torch.randn(shape, dtype=torch.float32))}]})
        # Successive draws continue one stream, the cached second Box–Muller value included.
        torch.manual_seed(seed)
        cases.append({"kind": "manual_seed, successive", "seed": str(seed),
                      "draws": [{"shape": [n], "values": f32_base64(torch.randn(n))} for n in (5, 20, 3, 1, 16)]})
        generator = torch.Generator("cpu").manual_seed(seed)
        cases.append({"kind": "Generator", "seed": str(seed),
                      "draws": [{"shape": shape, "values": f32_base64(torch.randn(shape, generator=generator, dtype=torch.float32))}
                                for shape in ([1, 4, 8, 8], [3], [16], [1, 4, 16, 16], [5])]})
    with open(OUT, "w") as f:
        json.dump({"torch": torch.__version__, "kernel": KERNEL, "cases": cases}, f, separators=(",", ":"))
    print("wrote", os.path.normpath(OUT), os.path.getsize(OUT), "bytes,", len(cases), "cases", file=sys.stderr)


if __name__ == "__main__":
    main()
