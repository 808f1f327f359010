"""
Soft inpainting goldens: diffusers' StableDiffusionInpaintPipeline on the end-to-end fixture's tiny model
(test/fixtures/diffusers-parity/tiny-inpaint, rebuilt here from torch.manual_seed(0) exactly as e2e_fixture.py
builds it), with differential diffusion added through the pipeline's own hooks, for a grey mask.

diffusers has differential diffusion only as community img2img pipelines (examples/community/
pipeline_stable_diffusion_xl_differential_img2img.py and its SD3, Kolors, HunyuanDiT and Flux siblings); none runs
an SD 1.5 inpainting UNet, and the parity kit holds diffusers' library, not its examples. So the published
algorithm of those pipelines is added to the real inpainting pipeline here, in their words:

    thresholds = torch.arange(total_time_steps) / total_time_steps
    masks = map > thresholds                  # map = 1 - mask: how much each place is kept
    before step i > 0: latents = original_with_noise[i] * masks[i] + latents * (1 - masks[i])

with original_with_noise[i] the image latents noised to the i-th timestep run. The differences from the community
file, which Maskflow shares (see server/engines/onnx/differential-diffusion.ts): total_time_steps is the number of
steps run (the same at strength 1), the noise is the pipeline's own (the community file draws a second one), the
map is the area mean of the mask over each latent's pixels, step 0 is held as the others (at strength < 1 that is
what the pipeline starts from anyway), and after the last step the places where the mask is 0 take the clean image
latents, as the pipeline's 4-channel path does with its known region. At strength 1 a 9-channel UNet's pipeline
encodes no image latents: they are the VAE's mean here (no generator draw), as in Maskflow.

    PYTHONPATH=<diffusers>/src:<huggingface_hub>/src:<stubs> /usr/bin/python3 test/parity/soft_inpaint_fixture.py
"""
import json
import os
import sys

import numpy as np
import torch
from PIL import Image
import diffusers
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_inpaint import StableDiffusionInpaintPipeline
from transformers import CLIPTokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_fixture import PROMPT, VOCABULARY, build_models, make_picture, make_scheduler, write_json  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
CASES = os.path.join(REPO, "test", "fixtures", "diffusers-parity", "soft-inpaint-cases")
VAE_FACTOR = 4  # the fixture's VAE has three blocks

CASES_LIST = [
    dict(name="soft-ddim", scheduler="DDIM", steps=8, guidance=7.5, strength=1.0, seed=42, samples=1, width=64, height=64),
    dict(name="soft-euler-a-img2img", scheduler="Euler a", steps=10, guidance=7.5, strength=0.7, seed=7, samples=1, width=64, height=64),
    dict(name="soft-dpm-multi-two-samples", scheduler="DPM Multi", steps=6, guidance=1.0, strength=1.0, seed=3, samples=2, width=64, height=64),
]


def make_soft_mask(width, height):
    """A disc whose edge fades over 16 px, and a left-to-right ramp in the bottom quarter: every grey level."""
    y, x = np.mgrid[0:height, 0:width]
    distance = np.hypot(x - width * 0.55, y - height * 0.4)
    disc = np.clip((20 - distance) / 16, 0, 1)
    mask = disc * 255
    ramp = y >= height * 3 // 4
    mask[ramp] = x[ramp] * 255.0 / (width - 1)
    return Image.fromarray(mask.round().astype(np.uint8), "L")


def latent_change_mask(mask_file, factor):
    """The mask's mean over each latent's factor × factor pixels, x / 255, in float64 then float32."""
    values = np.asarray(Image.open(mask_file).convert("L"), dtype=np.float64)
    h, w = values.shape
    means = values.reshape(h // factor, factor, w // factor, factor).sum(axis=(1, 3)) / (factor * factor * 255)
    return torch.from_numpy(means.astype(np.float32))


def held_before_step(change, step, steps_run):
    if step >= steps_run:
        return (change <= 0).to(torch.float32)
    kept = 1 - change  # float32, as the community pipelines' map
    thresholds = torch.arange(steps_run, dtype=torch.float32) / steps_run
    return (kept > thresholds[step]).to(torch.float32)


def run_case(case, vae, text_encoder, unet, tokenizer):
    width, height = case["width"], case["height"]
    picture_file = os.path.join(CASES, f"picture-{width}x{height}.png")
    mask_file = os.path.join(CASES, f"soft-mask-{width}x{height}.png")
    pipe = StableDiffusionInpaintPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                          scheduler=make_scheduler(case["scheduler"]), safety_checker=None,
                                          feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    change = latent_change_mask(mask_file, VAE_FACTOR)
    state = {}
    original_prepare = pipe.prepare_latents

    def prepare_latents(*args, **kwargs):
        is_strength_max = kwargs["is_strength_max"]
        wanted = kwargs["return_image_latents"]
        # Asking for the image latents draws nothing more when strength < 1 (the pipeline encodes them anyway).
        if not is_strength_max:
            kwargs["return_image_latents"] = True
        outputs = original_prepare(*args, **kwargs)
        latents, noise = outputs[0], outputs[1]
        if len(outputs) == 3:
            image_latents = outputs[2]
        else:
            image = kwargs["image"]
            image_latents = pipe.vae.config.scaling_factor * pipe.vae.encode(image).latent_dist.mode()
            image_latents = image_latents.repeat(noise.shape[0], 1, 1, 1)
        # get_timesteps for first-order schedulers (all the cases): the last int(steps × strength) timesteps.
        steps_run = min(int(case["steps"] * case["strength"]), case["steps"])
        state.update(noise=noise, image_latents=image_latents, steps_run=steps_run)
        held = held_before_step(change, 0, steps_run)
        start = pipe.scheduler.add_noise(image_latents, noise, kwargs["timestep"])
        latents = start * held + latents * (1 - held)
        return (latents, noise, image_latents) if wanted else (latents, noise)

    pipe.prepare_latents = prepare_latents

    def on_step_end(pipeline, i, t, callback_kwargs):
        latents = callback_kwargs["latents"]
        steps_run = state["steps_run"]
        held = held_before_step(change, i + 1, steps_run)
        if i + 1 >= steps_run:
            known = state["image_latents"]
        else:
            next_t = pipeline.scheduler.timesteps[case["steps"] - steps_run + i + 1]
            known = pipeline.scheduler.add_noise(state["image_latents"], state["noise"], torch.tensor([next_t]))
        return {"latents": known * held + latents * (1 - held)}

    with torch.no_grad():
        result = pipe(prompt=PROMPT, negative_prompt=None, image=Image.open(picture_file).convert("RGB"),
                      mask_image=Image.open(mask_file), width=width, height=height, strength=case["strength"],
                      num_inference_steps=case["steps"], guidance_scale=case["guidance"],
                      num_images_per_prompt=case["samples"], generator=torch.Generator("cpu").manual_seed(case["seed"]),
                      callback_on_step_end=on_step_end, output_type="pil")
    outputs = []
    for n, image in enumerate(result.images):
        outputs.append(f"{case['name']}-{n}.png")
        image.save(os.path.join(CASES, outputs[-1]))
    return {**case, "prompt": PROMPT, "negative": "", "picture": os.path.basename(picture_file),
            "mask": os.path.basename(mask_file), "diffusers_images": outputs}


def main():
    unet, vae, text_encoder = build_models()
    tokenizer = CLIPTokenizer(os.path.join(VOCABULARY, "vocab.json"), os.path.join(VOCABULARY, "merges.txt"))
    os.makedirs(CASES, exist_ok=True)
    make_picture(64, 64).save(os.path.join(CASES, "picture-64x64.png"))
    make_soft_mask(64, 64).save(os.path.join(CASES, "soft-mask-64x64.png"))
    listed = [run_case(case, vae, text_encoder, unet, tokenizer) for case in CASES_LIST]
    write_json(os.path.join(CASES, "cases.json"), {"diffusers": diffusers.__version__, "torch": torch.__version__, "cases": listed})


if __name__ == "__main__":
    main()
