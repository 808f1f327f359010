"""
Scheduler goldens: diffusers' own scheduler classes (torch CPU, float32), each of Maskflow's eleven names
built as server/engines/onnx/schedulers/index.ts builds it, driven by one deterministic fake denoiser for
10 and 25 steps at strength 1 and 0.6. test/scheduler-goldens.test.ts replays every run on Maskflow's
schedulers with Maskflow's TorchGenerator and compares each step.

    PYTHONPATH=<diffusers>/src:<huggingface_hub>/src:<stubs> /usr/bin/python3 test/parity/scheduler_goldens.py
writes test/fixtures/diffusers-parity/schedulers.json (see test/parity/README.md).
"""
import inspect
import json
import math
import os
import sys

import numpy as np
import torch

import diffusers
from diffusers import (DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, DPMSolverSinglestepScheduler,
                       EulerAncestralDiscreteScheduler, EulerDiscreteScheduler, HeunDiscreteScheduler,
                       KDPM2AncestralDiscreteScheduler, KDPM2DiscreteScheduler, LMSDiscreteScheduler, PNDMScheduler)

sys.path.insert(0, os.path.dirname(__file__))
import diffusers_v031  # noqa: E402,F401  DPM2 a Karras draws noise as in v0.31
from golden_io import f32_base64, numbers  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "fixtures", "diffusers-parity", "schedulers.json")
# Stable Diffusion 1.5's scheduler_config.json (runwayml/stable-diffusion-inpainting).
SD15 = {"_class_name": "PNDMScheduler", "num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
        "beta_schedule": "scaled_linear", "steps_offset": 1, "set_alpha_to_one": False, "skip_prk_steps": True,
        "clip_sample": False, "prediction_type": "epsilon", "trained_betas": None}
NAMES = ["DDIM", "DPM Multi", "DPM Single", "Euler a", "Euler", "Heun", "DPM2 a Karras", "DPM2 Karras", "LMS", "PNDM", "DDPM"]
RUNS = [(10, 1.0), (25, 1.0), (10, 0.6), (25, 0.6)]
SHAPE = [1, 4, 8, 8]
NOISE_SEED = 1234


def make(name):
    """The same classes and overrides as Maskflow's createScheduler."""
    if name == "DDIM": return DDIMScheduler.from_config(SD15)
    if name == "DPM Multi": return DPMSolverMultistepScheduler.from_config(SD15, algorithm_type="dpmsolver++", solver_order=2)
    if name == "DPM Single": return DPMSolverSinglestepScheduler.from_config(SD15)
    if name == "Euler a": return EulerAncestralDiscreteScheduler.from_config(SD15)
    if name == "Euler": return EulerDiscreteScheduler.from_config(SD15)
    if name == "Heun": return HeunDiscreteScheduler.from_config(SD15)
    if name == "DPM2 a Karras": return KDPM2AncestralDiscreteScheduler.from_config(SD15, use_karras_sigmas=True)
    if name == "DPM2 Karras": return KDPM2DiscreteScheduler.from_config(SD15, use_karras_sigmas=True)
    if name == "LMS": return LMSDiscreteScheduler.from_config(SD15)
    if name == "PNDM": return PNDMScheduler.from_config(SD15, skip_prk_steps=True)
    if name == "DDPM": return DDPMScheduler.from_config(SD15)
    raise KeyError(name)




def fake_eps(x, t):
    """eps = 0.3·x·cos(t/100) + 0.05·sin(3x) in float64 from float32 x and float32 t, rounded to float32."""
    tf = float(np.float32(float(t)))
    xd = x.detach().to(torch.float64)
    return (0.3 * xd * math.cos(tf / 100.0) + 0.05 * torch.sin(3.0 * xd)).to(torch.float32)


def main():
    base_noise = torch.randn(SHAPE, generator=torch.Generator("cpu").manual_seed(0), dtype=torch.float32)
    image_latents = torch.randn(SHAPE, generator=torch.Generator("cpu").manual_seed(1), dtype=torch.float32) * 0.5
    out = {"diffusers": diffusers.__version__, "torch": torch.__version__, "config": SD15, "shape": SHAPE,
           "noise_seed": NOISE_SEED, "base_noise": f32_base64(base_noise), "image_latents": f32_base64(image_latents),
           "runs": []}
    for name in NAMES:
        for steps, strength in RUNS:
            s = make(name)
            s.set_timesteps(steps, device="cpu")
            # StableDiffusionInpaintPipeline.get_timesteps
            init_timestep = min(int(steps * strength), steps)
            t_start = max(steps - init_timestep, 0)
            ts = s.timesteps[t_start * s.order:]
            if hasattr(s, "set_begin_index"):
                s.set_begin_index(t_start * s.order)
            generator = torch.Generator("cpu").manual_seed(NOISE_SEED)
            latents = base_noise * s.init_noise_sigma if strength == 1.0 else s.add_noise(image_latents, base_noise, ts[:1])
            start = latents
            trajectory = []
            takes_generator = "generator" in inspect.signature(s.step).parameters
            for t in ts:
                eps = fake_eps(s.scale_model_input(latents, t), t)
                kwargs = {"generator": generator} if takes_generator else {}
                latents = s.step(eps, t, latents, return_dict=False, **kwargs)[0]
                trajectory.append(f32_base64(latents))
            sigmas = getattr(s, "sigmas", None)
            out["runs"].append({"name": name, "class": type(s).__name__, "steps": steps, "strength": strength,
                                "timesteps": numbers(s.timesteps), "sigmas": numbers(sigmas) if sigmas is not None else None,
                                "init_noise_sigma": float(s.init_noise_sigma), "run_timesteps": numbers(ts),
                                "start": f32_base64(start), "trajectory": trajectory})
            print(name, steps, strength, "model calls", len(ts), file=sys.stderr)
    with open(OUT, "w") as f:
        json.dump(out, f, separators=(",", ":"))
    print("wrote", os.path.normpath(OUT), os.path.getsize(OUT), "bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
