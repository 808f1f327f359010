"""
LoRAs on the tiny SD 1.5 inpainting checkpoint, refereed by diffusers: the goldens of test/fixtures/lora-parity/.

1. Runs the TypeScript generators into a temporary folder: the tiny checkpoint (make-tiny-checkpoint.ts) and its
   LoRAs (make-tiny-lora.ts: kohya with LDM names, kohya with diffusers names and LoCon convolutions, PEFT).
2. Loads the checkpoint's single file into diffusers' modules with diffusers' own converters (checkpoint_fixture.py's
   load_from_single_file), then merges each LoRA by plain arithmetic into the modules' weights:
   W += strength · alpha / rank · (up · down), with strength_model on the UNet and strength_clip on the text encoder
   (not with diffusers' LoRA loader, which needs peft). Its own key map, from diffusers' conversion: a kohya LDM
   name is the LDM key (dots as underscores) of the tensor diffusers' converter moved to that weight; a kohya
   diffusers name is the diffusers name; PEFT's is `unet.` / `text_encoder.` + the module. Every LoRA key must land.
3. Runs StableDiffusionInpaintPipeline (DDIM, 6 steps, guidance 7.5, seed 42, 64×64, e2e_fixture.py's picture,
   mask and prompt) per case, and checks each LoRA changed the picture (PSNR against the picture without LoRA).

The LoRA files are not committed: the tests regenerate them, so cases.json records the generator's stamp and each
file's SHA-256 (test/lora-e2e.test.ts requires the same bytes).

    PYTHONPATH=<diffusers>/src:<huggingface_hub>/src:<stubs>:<tqdm> /usr/bin/python3 test/parity/lora_fixture.py
"""
import hashlib
import json
import math
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
from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_inpaint import StableDiffusionInpaintPipeline
from transformers import CLIPTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from checkpoint_fixture import UNET_PREFIX, load_from_single_file, read_safetensors, torch_dict, write_json  # noqa: E402
from e2e_fixture import PROMPT, make_mask, make_picture, make_scheduler  # noqa: E402

REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(REPO, "test", "fixtures", "lora-parity")
CHECKPOINT_GENERATOR = os.path.join("test", "fixtures", "make-tiny-checkpoint.ts")
LORA_GENERATOR = os.path.join("test", "fixtures", "make-tiny-lora.ts")
LORA_FILES = ["kohya-ldm.safetensors", "kohya-diffusers-locon.safetensors", "peft.safetensors"]

SETTINGS = dict(scheduler="DDIM", steps=6, guidance=7.5, strength=1.0, seed=42, samples=1, width=64, height=64)
CASES_LIST = [
    dict(name="kohya-ldm", loras=[dict(file="kohya-ldm.safetensors", strength_model=0.8, strength_clip=1.2)]),
    dict(name="peft", loras=[dict(file="peft.safetensors", strength_model=1.0, strength_clip=0.0)]),
    dict(name="locon", loras=[dict(file="kohya-diffusers-locon.safetensors", strength_model=-0.5, strength_clip=0.7)]),
    dict(name="stacked", loras=[dict(file="kohya-ldm.safetensors", strength_model=0.5, strength_clip=0.5),
                                dict(file="peft.safetensors", strength_model=0.6, strength_clip=0.8)]),
]
# A LoRA must change the picture well beyond rounding (two pictures within 40 dB look alike).
MAX_PSNR_AGAINST_NO_LORA = 35.0


def log(*args):
    print(*args, file=sys.stderr)


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def lora_key_map(single, unet_config, converted):
    """LoRA module name → (module, parameter name in diffusers' modules), built from diffusers' conversion."""
    # The converter moves the LDM tensors to their diffusers names (no copies): the data pointers pair the names.
    checkpoint = torch_dict(single)
    by_pointer = {tensor.data_ptr(): name for name, tensor in checkpoint.items()}
    unet_state = convert_ldm_unet_checkpoint(checkpoint, unet_config)
    assert set(unet_state) == set(converted["unet"])
    ldm_of = {name: by_pointer[tensor.data_ptr()] for name, tensor in unet_state.items()}
    key_map = {}
    for name in unet_state:
        if not name.endswith(".weight"):
            continue
        module = name[:-len(".weight")]
        ldm = ldm_of[name][len(UNET_PREFIX):-len(".weight")]
        for key in ("lora_unet_" + module.replace(".", "_"), "lora_unet_" + ldm.replace(".", "_"), "unet." + module):
            assert key_map.get(key, ("unet", name)) == ("unet", name), key
            key_map[key] = ("unet", name)
    for name in converted["text_encoder"]:
        if not name.endswith(".weight"):
            continue
        module = name[:-len(".weight")]
        port = name.replace("text_model.encoder.layers.", "text_model.layers.")  # the kit's CLIP port
        for key in ("lora_te_" + module.replace(".", "_"), "text_encoder." + module):
            key_map[key] = ("text_encoder", port)
    return key_map


def lora_modules(path):
    """module name → {down, up, alpha} as float32 torch tensors (alpha None when the file has none)."""
    arrays, _ = read_safetensors(path)
    modules = {}
    for key, array in arrays.items():
        for suffix, role in ((".lora_down.weight", "down"), (".lora_up.weight", "up"), (".lora_A.weight", "down"),
                             (".lora_B.weight", "up"), (".alpha", "alpha")):
            if key.endswith(suffix):
                modules.setdefault(key[:-len(suffix)], {})[role] = torch.from_numpy(np.array(array, dtype=np.float32))
                break
        else:
            raise AssertionError(f"{path}: {key} is no LoRA weight")
    return modules


def merge(modules_by_part, key_map, path, strength_model, strength_clip):
    """W += strength · alpha / rank · (up · down), reshaped to W, in float32; returns the number of weights changed."""
    changed = 0
    for name, module in lora_modules(path).items():
        part, parameter = key_map[name]  # every module must land
        strength = strength_model if part == "unet" else strength_clip
        if strength == 0:
            continue
        down, up = module["down"], module["up"]
        rank = down.shape[0]
        assert up.shape[1] == rank, (name, up.shape, down.shape)
        alpha = module["alpha"].item() if "alpha" in module else rank
        weight = modules_by_part[part].get_parameter(parameter)
        delta = (up.reshape(up.shape[0], rank) @ down.reshape(rank, -1)).reshape(weight.shape)
        with torch.no_grad():
            weight += (strength * alpha / rank) * delta
        changed += 1
    return changed


def run_pipeline(unet, vae, text, tokenizer, picture_file, mask_file):
    pipe = StableDiffusionInpaintPipeline(vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet,
                                          scheduler=make_scheduler(SETTINGS["scheduler"]), safety_checker=None,
                                          feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    with torch.no_grad():
        result = pipe(prompt=PROMPT, negative_prompt=None, image=Image.open(os.path.join(OUT, picture_file)).convert("RGB"),
                      mask_image=Image.open(os.path.join(OUT, mask_file)), width=SETTINGS["width"], height=SETTINGS["height"],
                      strength=SETTINGS["strength"], num_inference_steps=SETTINGS["steps"], guidance_scale=SETTINGS["guidance"],
                      num_images_per_prompt=SETTINGS["samples"], generator=torch.Generator("cpu").manual_seed(SETTINGS["seed"]),
                      output_type="pil")
    return result.images[0]


def psnr(a, b):
    mse = np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255 ** 2 / mse)


def main():
    tmp = tempfile.mkdtemp(prefix="maskflow-lora-parity-")
    try:
        checkpoint_dir, lora_dir = os.path.join(tmp, "checkpoint"), os.path.join(tmp, "loras")
        subprocess.run(["node", "bin/run-ts.js", CHECKPOINT_GENERATOR, "--out", checkpoint_dir], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["node", "bin/run-ts.js", LORA_GENERATOR, "--out", lora_dir], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(checkpoint_dir, ".maskflow-fixture.json")) as f:
            checkpoint_stamp = json.load(f)
        with open(os.path.join(lora_dir, ".maskflow-fixture.json")) as f:
            lora_stamp = json.load(f)
        single_file = os.path.join(checkpoint_dir, "single-file.safetensors")
        single, _ = read_safetensors(single_file)
        folder = os.path.join(checkpoint_dir, "diffusers")
        tokenizer = CLIPTokenizer(os.path.join(folder, "tokenizer", "vocab.json"), os.path.join(folder, "tokenizer", "merges.txt"))
        torch.set_num_threads(1)  # one summation order, so a rerun gives the same bytes

        os.makedirs(OUT, exist_ok=True)
        width, height = SETTINGS["width"], SETTINGS["height"]
        picture_file, mask_file = f"picture-{width}x{height}.png", f"mask-{width}x{height}.png"
        make_picture(width, height).save(os.path.join(OUT, picture_file))
        make_mask(width, height).save(os.path.join(OUT, mask_file))

        unet, vae, text, _ = load_from_single_file(single, folder)
        plain = run_pipeline(unet, vae, text, tokenizer, picture_file, mask_file)

        listed = []
        for case in CASES_LIST:
            unet, vae, text, converted = load_from_single_file(single, folder)
            key_map = lora_key_map(single, unet.config, converted)
            changed = {}
            for lora in case["loras"]:
                changed[lora["file"]] = merge({"unet": unet, "text_encoder": text}, key_map, os.path.join(lora_dir, lora["file"]),
                                              lora["strength_model"], lora["strength_clip"])
            image = run_pipeline(unet, vae, text, tokenizer, picture_file, mask_file)
            pixels = np.asarray(image, dtype=np.float64)
            assert pixels.std() > 5 and (pixels == 0).mean() + (pixels == 255).mean() < 0.5, (case["name"], pixels.std())
            distance = psnr(image, plain)
            assert distance < MAX_PSNR_AGAINST_NO_LORA, (case["name"], distance)
            output = f"{case['name']}-0.png"
            image.save(os.path.join(OUT, output))
            listed.append({"name": case["name"], **SETTINGS, "prompt": PROMPT, "negative": "", "picture": picture_file, "mask": mask_file,
                           "diffusers_images": [output], "loras": case["loras"], "weights_changed": changed,
                           "psnr_against_no_lora": round(distance, 2)})
            log(case["name"], f"{distance:.2f} dB from the picture without LoRA; weights changed {changed}")
        plain.save(os.path.join(OUT, "no-lora-0.png"))

        versions = {"diffusers": diffusers.__version__, "torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version()}
        write_json(os.path.join(OUT, "cases.json"), {
            **versions,
            "checkpoint": {"generator": checkpoint_stamp, "single_file_sha256": sha256(single_file)},
            "lora_generator": lora_stamp,
            "lora_files": {name: sha256(os.path.join(lora_dir, name)) for name in LORA_FILES},
            "no_lora_image": "no-lora-0.png",
            "cases": listed,
        })
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
