"""
The tiny SD 1.5 inpainting checkpoint (test/fixtures/make-tiny-checkpoint.ts) refereed by diffusers itself, and
the goldens Maskflow's own graph builders are compared with (test/fixtures/checkpoint-parity/).

1. Runs the TypeScript generator into a temporary folder.
2. Reads single-file.safetensors with numpy (the kit's `safetensors` is import-only), converts it with diffusers'
   own convert_ldm_unet_checkpoint / convert_ldm_vae_checkpoint / convert_ldm_clip_checkpoint, and loads
   UNet2DConditionModel, AutoencoderKL and the CLIP text model with load_state_dict(strict=True): the LDM names
   the generator derives from its diffusers→LDM table are right exactly when this takes every tensor.
3. Checks that the diffusers folder, model.ckpt (torch.load(weights_only=True)), fp16.safetensors and
   plain.safetensors hold the same tensors, and that model.ckpt's pickle is byte for byte what torch.save writes.
4. Checks the random weights keep activations in range (the VAE decoder's output neither flat nor saturated, the
   UNet's output moved by its sample, timestep and text), then writes modules.json (inputs and outputs of each
   network) and the end-to-end cases of StableDiffusionInpaintPipeline on these modules (inpaint-cases/).

    PYTHONPATH=<diffusers>/src:<huggingface_hub>/src:<stubs> /usr/bin/python3 test/parity/checkpoint_fixture.py
"""
import collections
import hashlib
import json
import os
import platform
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile

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
from e2e_fixture import PROMPT, make_mask, make_picture, make_scheduler  # noqa: E402  the same inputs and schedulers
from golden_io import f32_base64  # noqa: E402

REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(REPO, "test", "fixtures", "checkpoint-parity")
CASES = os.path.join(OUT, "inpaint-cases")
GENERATOR = os.path.join("test", "fixtures", "make-tiny-checkpoint.ts")

UNET_PREFIX, VAE_PREFIX, TEXT_PREFIX = "model.diffusion_model.", "first_stage_model.", "cond_stage_model.transformer."
DDPM_BUFFERS = {"betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
                "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod",
                "posterior_variance", "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2"}
POSITION_IDS = "text_model.embeddings.position_ids"

CASES_LIST = [
    dict(name="ddim", scheduler="DDIM", steps=6, guidance=7.5, strength=1.0, seed=42, samples=1, width=64, height=64),
    dict(name="euler-a", scheduler="Euler a", steps=6, guidance=7.5, strength=1.0, seed=7, samples=1, width=64, height=64),
]

numbers_checked = collections.Counter()


def log(*args):
    print(*args, file=sys.stderr)


def read_safetensors(path):
    """name → numpy array, metadata; checks the layout rules the safetensors library enforces."""
    with open(path, "rb") as f:
        data = f.read()
    (length,) = struct.unpack("<Q", data[:8])
    assert length % 8 == 0, f"{path}: header length {length} not 8-aligned"
    header = json.loads(data[8:8 + length].decode("utf-8"))
    metadata = header.pop("__metadata__", {})
    body = memoryview(data)[8 + length:]
    dtypes = {"F32": "<f4", "F16": "<f2", "I64": "<i8", "BF16": "<u2"}
    tensors, end = {}, 0
    for name, info in sorted(header.items(), key=lambda item: item[1]["data_offsets"][0]):
        start, stop = info["data_offsets"]
        assert start == end, f"{path}: {name} starts at {start}, expected {end}"
        array = np.frombuffer(body[start:stop], dtype=dtypes[info["dtype"]]).reshape(info["shape"])
        if info["dtype"] == "BF16":
            array = (array.astype(np.uint32) << 16).view(np.float32)
        tensors[name] = array
        end = stop
    assert end == len(body), f"{path}: {len(body) - end} bytes after the last tensor"
    return tensors, metadata


def torch_dict(arrays):
    return {name: torch.from_numpy(np.array(array)) for name, array in arrays.items()}


def assert_same(label, expected, actual):
    """Two name → tensor dicts: the same names, shapes, dtypes and bits."""
    assert set(expected) == set(actual), f"{label}: only expected {sorted(set(expected) - set(actual))[:5]}, only actual {sorted(set(actual) - set(expected))[:5]}"
    for name, value in expected.items():
        other = actual[name]
        assert tuple(value.shape) == tuple(other.shape), f"{label}: {name} {tuple(value.shape)} vs {tuple(other.shape)}"
        assert value.dtype == other.dtype, f"{label}: {name} {value.dtype} vs {other.dtype}"
        assert torch.equal(value, other), f"{label}: {name} differs"
        numbers_checked[label] += value.numel()
    log(f"{label}: {len(expected)} tensors, {numbers_checked[label]} values identical")


def diffusers_folder(folder, part, file):
    arrays, metadata = read_safetensors(os.path.join(folder, part, file))
    assert metadata == {"format": "pt"}, metadata
    with open(os.path.join(folder, part, "config.json")) as f:
        return torch_dict(arrays), json.load(f)


def text_for_port(state):
    """transformers' names → the kit's CLIP port (layers without `encoder.`); position_ids is a non-persistent buffer."""
    return {name.replace("text_model.encoder.layers.", "text_model.layers."): value
            for name, value in state.items() if name != POSITION_IDS}


def load_from_single_file(single, folder):
    """The three modules, built from the diffusers folder's configs and loaded from the LDM file through diffusers."""
    checkpoint = torch_dict(single)
    _, unet_config = diffusers_folder(folder, "unet", "diffusion_pytorch_model.safetensors")
    _, vae_config = diffusers_folder(folder, "vae", "diffusion_pytorch_model.safetensors")
    with open(os.path.join(folder, "text_encoder", "config.json")) as f:
        text_config = json.load(f)
    unet = UNet2DConditionModel.from_config(unet_config).eval()
    vae = AutoencoderKL.from_config(vae_config).eval()
    text = CLIPTextModel(CLIPTextConfig(**{k: v for k, v in text_config.items() if not k.startswith("_") and k != "architectures"})).eval()

    unet_state = convert_ldm_unet_checkpoint(checkpoint, unet.config)
    vae_state = convert_ldm_vae_checkpoint(checkpoint, vae.config)
    text_state = convert_ldm_clip_checkpoint(checkpoint)
    # Every LDM key is taken by exactly one converter (or is one of LatentDiffusion's schedule buffers).
    count = lambda prefix: sum(name.startswith(prefix) for name in checkpoint)
    assert len(unet_state) == count(UNET_PREFIX), (len(unet_state), count(UNET_PREFIX))
    assert len(vae_state) == count(VAE_PREFIX), (len(vae_state), count(VAE_PREFIX))
    assert len(text_state) == count(TEXT_PREFIX), (len(text_state), count(TEXT_PREFIX))
    others = {name for name in checkpoint if not name.startswith((UNET_PREFIX, VAE_PREFIX, TEXT_PREFIX))}
    assert others == DDPM_BUFFERS, others
    assert text_state[POSITION_IDS].dtype == torch.int64 and torch.equal(text_state[POSITION_IDS], torch.arange(77)[None])

    unet.load_state_dict(unet_state, strict=True)
    vae.load_state_dict(vae_state, strict=True)
    text.load_state_dict(text_for_port(text_state), strict=True)
    log(f"diffusers' converters took all {len(checkpoint)} LDM tensors: unet {len(unet_state)}, vae {len(vae_state)}, text {len(text_state)}")
    return unet, vae, text, {"unet": unet_state, "vae": vae_state, "text_encoder": text_state}


def check_forms(tmp, single, converted):
    folder = os.path.join(tmp, "diffusers")
    for part, file, key in (("unet", "diffusion_pytorch_model.safetensors", "unet"),
                            ("vae", "diffusion_pytorch_model.safetensors", "vae"),
                            ("text_encoder", "model.safetensors", "text_encoder")):
        tensors, _ = diffusers_folder(folder, part, file)
        expected = {k: v for k, v in converted[key].items() if k != POSITION_IDS}
        assert_same(f"diffusers/{part} = diffusers' conversion of the single file", expected, tensors)

    single_torch = torch_dict(single)
    loaded = torch.load(os.path.join(tmp, "model.ckpt"), map_location="cpu", weights_only=True)
    assert set(loaded) == {"state_dict", "global_step"} and loaded["global_step"] == 0, list(loaded)
    assert isinstance(loaded["state_dict"], collections.OrderedDict)
    assert_same("model.ckpt (torch.load weights_only) = single-file.safetensors", single_torch, loaded["state_dict"])
    # torch.save of the same dict: the pickle and every storage record must be the same bytes.
    reference = os.path.join(tmp, "reference", "archive.ckpt")  # torch 1.x names the zip's folder after the file
    os.makedirs(os.path.dirname(reference))
    torch.save({"state_dict": collections.OrderedDict(loaded["state_dict"].items()), "global_step": 0}, reference)
    ours, theirs = zipfile.ZipFile(os.path.join(tmp, "model.ckpt")), zipfile.ZipFile(reference)
    assert ours.testzip() is None
    assert ours.read("archive/data.pkl") == theirs.read("archive/data.pkl"), "data.pkl differs from torch.save's"
    for name in theirs.namelist():
        assert ours.read(name) == theirs.read(name), name
    with open(os.path.join(tmp, "model.ckpt"), "rb") as f:
        raw = f.read()
    for info in ours.infolist():
        # torch mmaps storages: each record's data starts on a 64-byte boundary (the "FB" padding field).
        name_length, extra_length = struct.unpack("<HH", raw[info.header_offset + 26:info.header_offset + 30])
        assert (info.header_offset + 30 + name_length + extra_length) % 64 == 0, info.filename
    extra = sorted(set(ours.namelist()) - set(theirs.namelist()))
    assert extra == ["archive/byteorder"] and ours.read("archive/byteorder") == b"little", extra
    log(f"model.ckpt: {len(theirs.namelist())} records byte-identical to torch {torch.__version__}'s torch.save (+ byteorder, as torch >= 2.1)")

    fp16, _ = read_safetensors(os.path.join(tmp, "fp16.safetensors"))
    expected = {k: torch.from_numpy(v.astype(np.float16) if v.dtype == np.float32 else np.array(v)) for k, v in single.items()}
    assert_same("fp16.safetensors = single file rounded by numpy", expected, torch_dict(fp16))

    plain, _ = read_safetensors(os.path.join(tmp, "plain.safetensors"))
    conv_in = UNET_PREFIX + "input_blocks.0.0."  # its weight is [32, 4, 3, 3], and both are drawn to its fan-in
    assert plain[conv_in + "weight"].shape == (32, 4, 3, 3), plain[conv_in + "weight"].shape
    assert_same("plain.safetensors = single file but conv_in", {k: v for k, v in single_torch.items() if not k.startswith(conv_in)},
                {k: v for k, v in torch_dict(plain).items() if not k.startswith(conv_in)})
    plain_unet = UNet2DConditionModel.from_config({**dict(UNet2DConditionModel.load_config(os.path.join(folder, "unet"))), "in_channels": 4})
    plain_unet.load_state_dict(convert_ldm_unet_checkpoint(torch_dict(plain), plain_unet.config), strict=True)


def tensor(value):
    value = value.detach().float()
    return {"shape": list(value.shape), "data": f32_base64(value)}


def stats(value):
    value = value.detach().double()
    return {"mean": round(value.mean().item(), 6), "std": round(value.std().item(), 6), "min": round(value.min().item(), 6),
            "max": round(value.max().item(), 6)}


def module_goldens(unet, vae, text, tokenizer):
    generator = torch.Generator().manual_seed(2024)
    with torch.no_grad():
        ids = tokenizer(PROMPT, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
        hidden = text(ids)[0]
        sample = torch.randn(2, 9, 8, 8, generator=generator)
        context = torch.randn(2, 77, 64, generator=generator)
        outs = {t: unet(sample, torch.tensor(t), context).sample for t in (500, 21)}
        moved_sample = unet(sample + 0.1 * torch.randn(sample.shape, generator=generator), torch.tensor(500), context).sample
        no_text = unet(sample, torch.tensor(500), torch.zeros_like(context)).sample
        picture = np.asarray(make_picture(32, 32), dtype=np.float32) / 127.5 - 1
        image = torch.from_numpy(picture).permute(2, 0, 1)[None].contiguous()
        moments = vae.quant_conv(vae.encoder(image))
        # What the pipeline decodes: unit-variance latents divided by the scaling factor.
        latent = torch.randn(1, 4, 8, 8, generator=generator) / vae.config.scaling_factor
        decoded = vae.decoder(vae.post_quant_conv(latent))

    max_diff = lambda a, b: (a - b).abs().max().item()
    checks = {
        "text_encoder": {**stats(hidden), "positions_differ": max_diff(hidden[0, 1:], hidden[0, :-1])},
        "unet_500": stats(outs[500]), "unet_21": stats(outs[21]),
        "unet_timestep_effect": max_diff(outs[500], outs[21]),
        "unet_sample_effect": max_diff(outs[500], moved_sample),
        "unet_text_effect": max_diff(outs[500], no_text),
        "vae_encoder": stats(moments),
        "vae_decoder": {**stats(decoded), "saturated_fraction": (decoded.abs() > 1).double().mean().item()},
    }
    # The weights must keep the signal alive: outputs neither flat nor blown up, every input heard.
    for name in ("text_encoder", "unet_500", "unet_21", "vae_encoder", "vae_decoder"):
        assert 0.05 < checks[name]["std"] < 5, (name, checks[name])
    assert checks["vae_decoder"]["saturated_fraction"] < 0.05, checks["vae_decoder"]
    for name in ("unet_timestep_effect", "unet_sample_effect", "unet_text_effect"):
        assert checks[name] > 1e-3, (name, checks[name])
    log("activation checks:", json.dumps(checks))
    goldens = {
        "text_encoder": {"prompt": PROMPT, "input_ids": ids[0].tolist(), "last_hidden_state": tensor(hidden)},
        "unet": {"sample": tensor(sample), "encoder_hidden_states": tensor(context),
                 "cases": [{"timestep": t, "out_sample": tensor(outs[t])} for t in (500, 21)]},
        "vae_encoder": {"sample": tensor(image), "latent_parameters": tensor(moments)},
        "vae_decoder": {"latent_sample": tensor(latent), "sample": tensor(decoded)},
    }
    return goldens, checks


def inpaint_cases(unet, vae, text, tokenizer):
    os.makedirs(CASES, exist_ok=True)
    listed = []
    for case in CASES_LIST:
        width, height = case["width"], case["height"]
        picture_file, mask_file = f"picture-{width}x{height}.png", f"mask-{width}x{height}.png"
        make_picture(width, height).save(os.path.join(CASES, picture_file))
        make_mask(width, height).save(os.path.join(CASES, mask_file))
        pipe = StableDiffusionInpaintPipeline(vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet,
                                              scheduler=make_scheduler(case["scheduler"]), safety_checker=None,
                                              feature_extractor=None, requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        with torch.no_grad():
            result = pipe(prompt=PROMPT, negative_prompt=None, image=Image.open(os.path.join(CASES, picture_file)).convert("RGB"),
                          mask_image=Image.open(os.path.join(CASES, mask_file)), width=width, height=height,
                          strength=case["strength"], num_inference_steps=case["steps"], guidance_scale=case["guidance"],
                          num_images_per_prompt=case["samples"], generator=torch.Generator("cpu").manual_seed(case["seed"]),
                          output_type="pil")
        outputs = []
        for n, image in enumerate(result.images):
            pixels = np.asarray(image, dtype=np.float64)
            # A picture, not a flat fill nor pure clipping: the tiny model must make varied colours.
            assert pixels.std() > 5 and (pixels == 0).mean() + (pixels == 255).mean() < 0.5, (case["name"], pixels.std())
            outputs.append(f"{case['name']}-{n}.png")
            image.save(os.path.join(CASES, outputs[-1]))
        listed.append({**case, "prompt": PROMPT, "negative": "", "picture": picture_file, "mask": mask_file, "diffusers_images": outputs})
        log(case["name"], "done")
    return listed


def write_json(path, value):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(value, f, indent=1)
        f.write("\n")


def main():
    tmp = tempfile.mkdtemp(prefix="maskflow-checkpoint-parity-")
    try:
        subprocess.run(["node", "bin/run-ts.js", GENERATOR, "--out", tmp], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(tmp, ".maskflow-fixture.json")) as f:
            stamp = json.load(f)
        with open(os.path.join(tmp, "single-file.safetensors"), "rb") as f:
            single_sha256 = hashlib.sha256(f.read()).hexdigest()
        single, metadata = read_safetensors(os.path.join(tmp, "single-file.safetensors"))
        assert metadata == {}, metadata
        unet, vae, text, converted = load_from_single_file(single, os.path.join(tmp, "diffusers"))
        check_forms(tmp, single, converted)
        tokenizer = CLIPTokenizer(os.path.join(tmp, "diffusers", "tokenizer", "vocab.json"),
                                  os.path.join(tmp, "diffusers", "tokenizer", "merges.txt"))
        torch.set_num_threads(1)  # one summation order, so a rerun gives the same bytes
        goldens, checks = module_goldens(unet, vae, text, tokenizer)
        versions = {"diffusers": diffusers.__version__, "torch": torch.__version__, "numpy": np.__version__,
                    "python": platform.python_version()}
        source = {"generator": stamp, "single_file_sha256": single_sha256, "values_compared": dict(numbers_checked)}
        write_json(os.path.join(OUT, "modules.json"), {**versions, **source, "checks": checks, **goldens})
        listed = inpaint_cases(unet, vae, text, tokenizer)
        write_json(os.path.join(CASES, "cases.json"), {**versions, **source, "cases": listed})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
