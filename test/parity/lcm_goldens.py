"""
LCM scheduler goldens: diffusers' own LCMScheduler (torch CPU, float32), built from Stable Diffusion 1.5's
scheduler config as an LCM-LoRA user builds it (`LCMScheduler.from_config(pipe.scheduler.config)`), driven by
scheduler_goldens.py's fake denoiser the way StableDiffusionInpaintPipeline drives it (set_timesteps without
strength, then get_timesteps and set_begin_index), with its noise from a seeded torch generator. Runs: 2 to 25
steps at strength 1, 4 and 8 steps at strength 0.6 and 0.5, and two runs with other settings (per-run
`overrides`: original_inference_steps 100, v-prediction with clip_sample). test/lcm-scheduler.test.ts replays
every run on Maskflow's LCM with its TorchGenerator and compares each step.

    PYTHONPATH=<diffusers>/src:<huggingface_hub>/src:<stubs> /usr/bin/python3 test/parity/lcm_goldens.py
writes test/fixtures/diffusers-parity/lcm-scheduler.json (see test/parity/README.md).
"""
import json
import os
import sys

import torch

import diffusers
from diffusers import LCMScheduler

sys.path.insert(0, os.path.dirname(__file__))
from golden_io import f32_base64, numbers  # noqa: E402
from scheduler_goldens import NOISE_SEED, SD15, SHAPE, fake_eps  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "fixtures", "diffusers-parity", "lcm-scheduler.json")
RUNS = [(2, 1.0, {}), (3, 1.0, {}), (4, 1.0, {}), (6, 1.0, {}), (7, 1.0, {}), (8, 1.0, {}), (25, 1.0, {}),
        (4, 0.6, {}), (8, 0.6, {}), (8, 0.5, {}),
        (6, 1.0, {"original_inference_steps": 100}),
        (4, 0.75, {"prediction_type": "v_prediction", "clip_sample": True, "clip_sample_range": 1.5})]


def main():
    base_noise = torch.randn(SHAPE, generator=torch.Generator("cpu").manual_seed(0), dtype=torch.float32)
    image_latents = torch.randn(SHAPE, generator=torch.Generator("cpu").manual_seed(1), dtype=torch.float32) * 0.5
    out = {"diffusers": diffusers.__version__, "torch": torch.__version__, "config": SD15, "shape": SHAPE,
           "noise_seed": NOISE_SEED, "base_noise": f32_base64(base_noise), "image_latents": f32_base64(image_latents),
           "runs": []}
    for steps, strength, overrides in RUNS:
        s = LCMScheduler.from_config(SD15, **overrides)
        s.set_timesteps(steps, device="cpu")
        # StableDiffusionInpaintPipeline.get_timesteps
        init_timestep = min(int(steps * strength), steps)
        t_start = max(steps - init_timestep, 0)
        ts = s.timesteps[t_start * s.order:]
        s.set_begin_index(t_start * s.order)
        generator = torch.Generator("cpu").manual_seed(NOISE_SEED)
        latents = base_noise * s.init_noise_sigma if strength == 1.0 else s.add_noise(image_latents, base_noise, ts[:1])
        start = latents
        trajectory = []
        for t in ts:
            eps = fake_eps(s.scale_model_input(latents, t), t)
            latents = s.step(eps, t, latents, generator=generator, return_dict=False)[0]
            trajectory.append(f32_base64(latents))
        out["runs"].append({"name": "LCM", "class": type(s).__name__, "steps": steps, "strength": strength,
                            "overrides": overrides, "timesteps": numbers(s.timesteps), "sigmas": None,
                            "init_noise_sigma": float(s.init_noise_sigma), "run_timesteps": numbers(ts),
                            "start": f32_base64(start), "trajectory": trajectory})
        print("LCM", steps, strength, overrides, "timesteps", numbers(ts), file=sys.stderr)
    with open(OUT, "w") as f:
        json.dump(out, f, separators=(",", ":"))
    print("wrote", os.path.normpath(OUT), os.path.getsize(OUT), "bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
