"""Writes test/fixtures/checkpoint-readers/: small checkpoints saved by real torch.save, and the values torch reads.

test/checkpoint-readers.test.ts opens each file with Maskflow's TypeScript .ckpt reader and compares every tensor
with what torch itself holds, bit for bit (float32 as base64, see golden_io.py). Rerun with Debian's torch:
    /usr/bin/python3 test/parity/torch_ckpt_fixture.py
The .ckpt files and expected.json are deterministic (fixed seeds; torch's zip writer stores no timestamps);
torch-legacy.pt is not byte-stable (the legacy format keys storages by memory address), only its format matters.
"""
import json
import os
import sys
import types
from collections import OrderedDict

import numpy
import torch

sys.path.insert(0, os.path.dirname(__file__))
from golden_io import f32_base64  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "fixtures", "checkpoint-readers")
DTYPES = {
    torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64", torch.int64: "I64",
    torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL",
}


def plain_dict():
    """A state dict with every dtype, a transposed view, two views of one storage, fp16 specials and a scalar."""
    g = torch.Generator().manual_seed(1234)
    shared = torch.randn(12, generator=g)
    half = torch.tensor([1.0, -2.5, 65504.0, 2.0 ** -24, 3 * 2.0 ** -24, 2.0 ** -14 - 2.0 ** -24, float("inf"),
                         float("-inf"), float("nan"), -0.0, 0.1], dtype=torch.float16)
    return {
        "a": torch.randn(3, 4, generator=g),
        "b_transposed": torch.randn(4, 3, generator=g).t(),
        "c_permuted": torch.randn(2, 3, 4, generator=g).permute(2, 0, 1),
        "h": half,
        "h_matrix": torch.randn(3, 5, generator=g).half(),
        "bf": torch.randn(2, 2, generator=g).bfloat16(),
        "d": torch.randn(5, generator=g, dtype=torch.float64),
        "position_ids": torch.arange(77).unsqueeze(0),
        "i32": torch.tensor([-2 ** 31, 7, 2 ** 31 - 1], dtype=torch.int32),
        "i16": torch.tensor([-32768, 12, 32767], dtype=torch.int16),
        "i8": torch.tensor([-128, 3, 127], dtype=torch.int8),
        "u8": torch.tensor([0, 200, 255], dtype=torch.uint8),
        "mask": torch.tensor([True, False, True]),
        "shared_tail": shared[4:10],
        "shared_matrix": shared.view(3, 4),
        "shared_column": shared.view(3, 4)[:, 1],
        "scalar": torch.tensor(0.18215),
        "empty": torch.zeros(0, 4),
        "parameter": torch.nn.Parameter(torch.randn(2, 2, generator=g)),
    }


def lightning_callback_class():
    """Lightning keys its callbacks' state by the callback class (sd-v1-4.ckpt holds ModelCheckpoint so). The class is
    made here under Lightning's module name, so the pickle names it exactly as a real Lightning checkpoint does."""
    for package in ("pytorch_lightning", "pytorch_lightning.callbacks", "pytorch_lightning.callbacks.model_checkpoint"):
        sys.modules.setdefault(package, types.ModuleType(package))
    module = sys.modules["pytorch_lightning.callbacks.model_checkpoint"]
    module.ModelCheckpoint = type("ModelCheckpoint", (), {"__module__": module.__name__})
    return module.ModelCheckpoint


def lightning_dict():
    """What Stable Diffusion's original checkpoints look like: Lightning's wrapper around an OrderedDict state dict,
    with callback state and numpy scalars beside it (never read, but they must not stop the reading)."""
    torch.manual_seed(5)
    layer = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.GroupNorm(1, 2))
    state = OrderedDict(("model." + key, value) for key, value in layer.state_dict().items())
    state._metadata = layer.state_dict()._metadata
    callbacks = {lightning_callback_class(): {"best_model_score": torch.tensor(0.25), "monitor": None}}
    return {
        "state_dict": state,
        "global_step": 5,
        "epoch": 1,
        "pytorch-lightning_version": "1.4.2",
        "callbacks": callbacks,
        "loops": {"learning_rate": numpy.float64(1e-4), "seen": numpy.int64(40)},
    }


def expected(tensors):
    out = {}
    for name, tensor in tensors.items():
        if not isinstance(tensor, torch.Tensor):
            continue
        out[name] = {"dtype": DTYPES[tensor.dtype], "shape": list(tensor.shape), "f32": f32_base64(tensor.detach().float())}
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    plain = plain_dict()
    lightning = lightning_dict()
    torch.save(plain, os.path.join(OUT, "torch-plain.ckpt"))
    torch.save(lightning, os.path.join(OUT, "torch-lightning.ckpt"))
    torch.save({"a": torch.ones(2)}, os.path.join(OUT, "torch-legacy.pt"), _use_new_zipfile_serialization=False)
    # What torch reads back is the reference (the same numbers as saved, views made contiguous).
    for name in ("torch-plain.ckpt", "torch-lightning.ckpt"):
        loaded = torch.load(os.path.join(OUT, name))
        source = plain if name == "torch-plain.ckpt" else lightning["state_dict"]
        assert all(torch.equal(loaded.get("state_dict", loaded)[k].nan_to_num(), v.detach().nan_to_num()) for k, v in source.items())
    golden = {
        "torch_version": torch.__version__,
        "torch-plain.ckpt": expected(plain),
        "torch-lightning.ckpt": expected(lightning["state_dict"]),
    }
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(golden, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
