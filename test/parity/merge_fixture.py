"""
"Add difference" refereed by diffusers (test/fixtures/merge-parity/): an inpainting model made from a plain
checkpoint, UNet = inpainting + (custom - base) * multiplier for every weight but conv_in.weight (the inpainting
model's own), text encoder and VAE from custom: server/models/checkpoint/inpainting-merge.ts's recipe.

1. Runs the TypeScript generators: make-tiny-checkpoint.ts (the tiny SD 1.5 inpainting single file, and the diffusers
   folder whose configs and tokenizer are used) and make-tiny-merge-models.ts (two plain 4-channel single files of
   the same architecture, other seeds: `custom` and `base`).
2. Converts each single file with diffusers' convert_ldm_* functions (checkpoint_fixture.py's loading; each module
   loaded with strict=True).
3. Merges in torch on the modules' state dicts, float32, weight by weight; writes weights.json: a few merged
   tensors at four multipliers (two of them not powers of two, so the float32 rounding of the multiplier shows).
4. Runs StableDiffusionInpaintPipeline (DDIM, 6 steps, guidance 7.5, seed 42, 64x64, e2e_fixture.py's picture and
   mask) with the merged UNet and custom's text encoder and VAE, at multipliers 1 and 0.5; writes the PNGs and
   cases.json (test/helpers/diffusers-e2e-cases.ts's schema, each case with its multiplier; each source's generator,
   seed and SHA-256).

    PYTHONPATH=<diffusers>/src:<huggingface_hub>/src:<stubs>:<tqdm> /usr/bin/python3 test/parity/merge_fixture.py
"""
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
from PIL import Image
import diffusers
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.loaders.single_file_utils import (convert_ldm_clip_checkpoint, convert_ldm_unet_checkpoint,
                                                 convert_ldm_vae_checkpoint)
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_inpaint import StableDiffusionInpaintPipeline
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import checkpoint_fixture  # noqa: E402  the tiny checkpoint's loading through diffusers' converters
from e2e_fixture import PROMPT, make_mask, make_picture, make_scheduler  # noqa: E402
from golden_io import f32_base64  # noqa: E402

REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(REPO, "test", "fixtures", "merge-parity")
CHECKPOINT_GENERATOR = os.path.join("test", "fixtures", "make-tiny-checkpoint.ts")
MERGE_GENERATOR = os.path.join("test", "fixtures", "make-tiny-merge-models.ts")

INPAINTING_ONLY = "conv_in.weight"
CASE = dict(scheduler="DDIM", steps=6, guidance=7.5, strength=1.0, seed=42, samples=1, width=64, height=64)
MULTIPLIERS = [(1.0, "ddim-multiplier-1"), (0.5, "ddim-multiplier-0-5")]
# weights.json: small tensors of three kinds (a bias, a norm weight, an attention matrix) plus conv_in's bias.
GOLDEN_WEIGHTS = ["conv_in.bias", "mid_block.resnets.0.norm1.weight", "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight"]
GOLDEN_MULTIPLIERS = [1.0, 0.5, 0.3, -1.7]


def log(*args):
    print(*args, file=sys.stderr)


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def load_plain(path, folder):
    """A plain (4-channel) single file through diffusers' converters, every module loaded strictly."""
    arrays, metadata = checkpoint_fixture.read_safetensors(path)
    assert metadata == {}, metadata
    checkpoint = checkpoint_fixture.torch_dict(arrays)
    _, unet_config = checkpoint_fixture.diffusers_folder(folder, "unet", "diffusion_pytorch_model.safetensors")
    _, vae_config = checkpoint_fixture.diffusers_folder(folder, "vae", "diffusion_pytorch_model.safetensors")
    with open(os.path.join(folder, "text_encoder", "config.json")) as f:
        text_config = json.load(f)
    unet = UNet2DConditionModel.from_config({**unet_config, "in_channels": 4}).eval()
    vae = AutoencoderKL.from_config(vae_config).eval()
    text = CLIPTextModel(CLIPTextConfig(**{k: v for k, v in text_config.items() if not k.startswith("_") and k != "architectures"})).eval()
    unet.load_state_dict(convert_ldm_unet_checkpoint(checkpoint, unet.config), strict=True)
    vae.load_state_dict(convert_ldm_vae_checkpoint(checkpoint, vae.config), strict=True)
    text.load_state_dict(checkpoint_fixture.text_for_port(convert_ldm_clip_checkpoint(checkpoint)), strict=True)
    assert unet.conv_in.weight.shape[1] == 4, unet.conv_in.weight.shape
    return unet, vae, text


def merged_state(inpainting, custom, base, multiplier):
    """inpainting + (custom - base) * multiplier, float32, every UNet weight but conv_in.weight."""
    theirs_custom, theirs_base = custom.state_dict(), base.state_dict()
    out = {}
    for name, value in inpainting.state_dict().items():
        assert value.dtype == torch.float32, (name, value.dtype)
        if name == INPAINTING_ONLY:
            out[name] = value.clone()
        else:
            assert theirs_custom[name].shape == value.shape == theirs_base[name].shape, name
            out[name] = value + (theirs_custom[name] - theirs_base[name]) * multiplier
    assert set(out) == set(theirs_custom) == set(theirs_base)
    return out


def merged_unet(inpainting, custom, base, multiplier):
    unet = UNet2DConditionModel.from_config(inpainting.config).eval()
    unet.load_state_dict(merged_state(inpainting, custom, base, multiplier), strict=True)
    return unet


def weight_goldens(inpainting, custom, base):
    goldens = []
    for multiplier in GOLDEN_MULTIPLIERS:
        state = merged_state(inpainting, custom, base, multiplier)
        # The same numbers as numpy's float32 arithmetic with the multiplier rounded to float32.
        for name in GOLDEN_WEIGHTS:
            a, c, b = (m.state_dict()[name].numpy() for m in (inpainting, custom, base))
            assert np.array_equal(state[name].numpy(), a + (c - b) * np.float32(multiplier)), (name, multiplier)
        goldens.append({"multiplier": multiplier,
                        "weights": {name: {"shape": list(state[name].shape), "data": f32_base64(state[name])} for name in GOLDEN_WEIGHTS}})
    return goldens


def unet_stats(unet):
    """The merged UNet keeps the signal alive (std of its output, and how much the text moves it)."""
    generator = torch.Generator().manual_seed(2024)
    with torch.no_grad():
        sample = torch.randn(1, 9, 8, 8, generator=generator)
        context = torch.randn(1, 77, unet.config.cross_attention_dim, generator=generator)
        out = unet(sample, torch.tensor(500), context).sample
        no_text = unet(sample, torch.tensor(500), torch.zeros_like(context)).sample
    return {"std": round(out.double().std().item(), 6), "text_effect": round((out - no_text).abs().max().item(), 6)}


def run_pipeline(unet, vae, text, tokenizer, picture_file, mask_file):
    pipe = StableDiffusionInpaintPipeline(vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet,
                                          scheduler=make_scheduler(CASE["scheduler"]), safety_checker=None,
                                          feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    with torch.no_grad():
        return pipe(prompt=PROMPT, negative_prompt=None, image=Image.open(os.path.join(OUT, picture_file)).convert("RGB"),
                    mask_image=Image.open(os.path.join(OUT, mask_file)), width=CASE["width"], height=CASE["height"],
                    strength=CASE["strength"], num_inference_steps=CASE["steps"], guidance_scale=CASE["guidance"],
                    num_images_per_prompt=CASE["samples"], generator=torch.Generator("cpu").manual_seed(CASE["seed"]),
                    output_type="pil").images


def write_json(path, value):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(value, f, indent=1)
        f.write("\n")


def main():
    tmp = tempfile.mkdtemp(prefix="maskflow-merge-parity-")
    try:
        inpainting_dir, merge_dir = os.path.join(tmp, "inpainting"), os.path.join(tmp, "merge")
        subprocess.run(["node", "bin/run-ts.js", CHECKPOINT_GENERATOR, "--out", inpainting_dir], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["node", "bin/run-ts.js", MERGE_GENERATOR, "--out", merge_dir], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
        stamps = {}
        for name, directory in (("inpainting", inpainting_dir), ("merge", merge_dir)):
            with open(os.path.join(directory, ".maskflow-fixture.json")) as f:
                stamps[name] = json.load(f)
        folder = os.path.join(inpainting_dir, "diffusers")
        files = {"inpainting": os.path.join(inpainting_dir, "single-file.safetensors"),
                 "custom": os.path.join(merge_dir, "custom.safetensors"), "base": os.path.join(merge_dir, "base.safetensors")}

        single, metadata = checkpoint_fixture.read_safetensors(files["inpainting"])
        assert metadata == {}, metadata
        inpainting_unet, _, _, _ = checkpoint_fixture.load_from_single_file(single, folder)
        custom_unet, custom_vae, custom_text = load_plain(files["custom"], folder)
        base_unet, _, _ = load_plain(files["base"], folder)
        tokenizer = CLIPTokenizer(os.path.join(folder, "tokenizer", "vocab.json"), os.path.join(folder, "tokenizer", "merges.txt"))
        torch.set_num_threads(1)  # one summation order, so a rerun gives the same bytes

        versions = {"diffusers": diffusers.__version__, "torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version()}
        sources = {
            "inpainting": {"file": "make-tiny-checkpoint.ts single-file.safetensors", "generator_version": stamps["inpainting"]["version"],
                           "seed": stamps["inpainting"]["seed"], "sha256": sha256(files["inpainting"])},
            "custom": {"file": "make-tiny-merge-models.ts custom.safetensors", "generator_version": stamps["merge"]["checkpointGeneratorVersion"],
                       "seed": stamps["merge"]["custom"], "sha256": sha256(files["custom"])},
            "base": {"file": "make-tiny-merge-models.ts base.safetensors", "generator_version": stamps["merge"]["checkpointGeneratorVersion"],
                     "seed": stamps["merge"]["base"], "sha256": sha256(files["base"])},
        }
        if os.path.isdir(OUT):
            shutil.rmtree(OUT)
        os.makedirs(OUT)
        write_json(os.path.join(OUT, "weights.json"), {**versions, "sources": sources, "merges": weight_goldens(inpainting_unet, custom_unet, base_unet)})

        picture_file, mask_file = f"picture-{CASE['width']}x{CASE['height']}.png", f"mask-{CASE['width']}x{CASE['height']}.png"
        make_picture(CASE["width"], CASE["height"]).save(os.path.join(OUT, picture_file))
        make_mask(CASE["width"], CASE["height"]).save(os.path.join(OUT, mask_file))
        plain_inpainting = np.asarray(run_pipeline(inpainting_unet, custom_vae, custom_text, tokenizer, picture_file, mask_file)[0], dtype=np.float64)
        checks, listed = {"inpainting_unet": unet_stats(inpainting_unet)}, []
        for multiplier, name in MULTIPLIERS:
            unet = merged_unet(inpainting_unet, custom_unet, base_unet, multiplier)
            checks[name] = unet_stats(unet)
            assert 0.05 < checks[name]["std"] < 5 and checks[name]["text_effect"] > 1e-3, (name, checks[name])
            outputs = []
            for n, image in enumerate(run_pipeline(unet, custom_vae, custom_text, tokenizer, picture_file, mask_file)):
                pixels = np.asarray(image, dtype=np.float64)
                # A picture, not a flat fill nor clipping, and not what the inpainting UNet alone paints.
                clipped = (pixels == 0).mean() + (pixels == 255).mean()
                moved = np.abs(pixels - plain_inpainting).mean()
                checks[name].update({"picture_std": round(pixels.std(), 3), "clipped_fraction": round(clipped, 4), "mean_change_from_unmerged": round(moved, 3)})
                assert pixels.std() > 5 and clipped < 0.5 and moved > 1, (name, checks[name])
                outputs.append(f"{name}-{n}.png")
                image.save(os.path.join(OUT, outputs[-1]))
            listed.append({"name": name, **CASE, "prompt": PROMPT, "negative": "", "picture": picture_file, "mask": mask_file,
                           "diffusers_images": outputs, "multiplier": multiplier})
            log(name, json.dumps(checks[name]))
        write_json(os.path.join(OUT, "cases.json"), {**versions, "recipe": "unet = inpainting + (custom - base) * multiplier, conv_in.weight = inpainting's; "
                                                     "text encoder and VAE = custom's", "sources": sources, "checks": checks, "cases": listed})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
