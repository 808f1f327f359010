"""How the parity goldens store numbers: short lists as JSON numbers, tensors as base64 of float32 LE."""
import base64

import numpy as np
import torch


def f32_base64(values):
    """A tensor or array as base64 of its float32 values, little-endian, flattened in C order."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return base64.b64encode(np.ascontiguousarray(values, dtype="<f4").tobytes()).decode("ascii")


def numbers(values):
    """A short tensor or array as a list of Python floats (float32 and float64 values print exactly)."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return [float(v) for v in np.asarray(values).flatten().tolist()]
