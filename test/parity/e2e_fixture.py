"""
The end-to-end fixture: a tiny model with Stable Diffusion inpainting's real architecture, made with diffusers'
own classes (UNet2DConditionModel, AutoencoderKL) and transformers' CLIP text model (the port in the parity
kit's stubs), random weights from torch.manual_seed(0), exported to ONNX in optimum's layout; then
diffusers' StableDiffusionInpaintPipeline run on those same torch modules for each case, its images kept as PNG.
test/diffusers-e2e.test.ts runs every case through `maskflow run` and compares the pictures.

    PYTHONPATH=<diffusers>/src:<huggingface_hub>/src:<stubs> /usr/bin/python3 test/parity/e2e_fixture.py

The VAE has three blocks, so one latent is 4×4 pixels (SD 1.5 has four: 8×8): Maskflow must take the factor from
the model, as diffusers does. Channels are small to keep the model a few MB; the text encoder's 49,408-token
embedding is most of it.
"""
import json
import os
import sys

import numpy as np
import torch
from PIL import Image
import diffusers
from diffusers import (AutoencoderKL, DDIMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler,
                       KDPM2AncestralDiscreteScheduler, LMSDiscreteScheduler, PNDMScheduler, UNet2DConditionModel)
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_inpaint import StableDiffusionInpaintPipeline
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import diffusers_v031  # noqa: E402,F401  DPM2 a Karras draws noise as in v0.31

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
MODEL = os.path.join(REPO, "test", "fixtures", "diffusers-parity", "tiny-inpaint")
CASES = os.path.join(REPO, "test", "fixtures", "diffusers-parity", "inpaint-cases")
VOCABULARY = os.path.join(REPO, "server", "engines", "onnx", "clip-vocabulary")
OPSET = 17

SCHEDULER_CONFIG = {"_class_name": "PNDMScheduler", "num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
                    "beta_schedule": "scaled_linear", "steps_offset": 1, "set_alpha_to_one": False, "skip_prk_steps": True,
                    "clip_sample": False, "prediction_type": "epsilon", "trained_betas": None}
UNET_CONFIG = dict(sample_size=16, in_channels=9, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
                   down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
                   cross_attention_dim=16, attention_head_dim=4, norm_num_groups=8)
VAE_CONFIG = dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 3,
                  up_block_types=("UpDecoderBlock2D",) * 3, block_out_channels=(8, 16, 16), layers_per_block=1,
                  latent_channels=4, norm_num_groups=8, sample_size=64, scaling_factor=0.18215)
TEXT_CONFIG = dict(vocab_size=49408, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                   max_position_embeddings=77, bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)

PROMPT = "a red brick house with a green door, photo"
# Each case as Maskflow's Scheduler and Inpaint nodes take it; the scheduler names are Maskflow's.
CASES_LIST = [
    dict(name="ddim", scheduler="DDIM", steps=6, guidance=7.5, strength=1.0, seed=42, samples=1, width=64, height=64),
    dict(name="euler-a", scheduler="Euler a", steps=6, guidance=7.5, strength=1.0, seed=7, samples=1, width=64, height=64),
    dict(name="lms-img2img", scheduler="LMS", steps=10, guidance=7.5, strength=0.6, seed=42, samples=1, width=64, height=64),
    dict(name="dpm-multi-no-guidance", scheduler="DPM Multi", steps=6, guidance=1.0, strength=1.0, seed=3, samples=1, width=64, height=64),
    dict(name="ddim-two-samples-img2img", scheduler="DDIM", steps=8, guidance=5.0, strength=0.75, seed=11, samples=2, width=64, height=64),
    dict(name="dpm2-a-karras-96x64", scheduler="DPM2 a Karras", steps=4, guidance=7.5, strength=1.0, seed=5, samples=1, width=96, height=64),
    dict(name="pndm-64x96-img2img", scheduler="PNDM", steps=8, guidance=7.5, strength=0.5, seed=9, samples=1, width=64, height=96),
]


def make_scheduler(name):
    """Maskflow's createScheduler, in diffusers."""
    if name == "DDIM": return DDIMScheduler.from_config(SCHEDULER_CONFIG)
    if name == "Euler a": return EulerAncestralDiscreteScheduler.from_config(SCHEDULER_CONFIG)
    if name == "LMS": return LMSDiscreteScheduler.from_config(SCHEDULER_CONFIG)
    if name == "DPM Multi": return DPMSolverMultistepScheduler.from_config(SCHEDULER_CONFIG, algorithm_type="dpmsolver++", solver_order=2)
    if name == "DPM2 a Karras": return KDPM2AncestralDiscreteScheduler.from_config(SCHEDULER_CONFIG, use_karras_sigmas=True)
    if name == "PNDM": return PNDMScheduler.from_config(SCHEDULER_CONFIG, skip_prk_steps=True)
    raise KeyError(name)


def build_models():
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**UNET_CONFIG).eval()
    vae = AutoencoderKL(**VAE_CONFIG).eval()
    text_encoder = CLIPTextModel(CLIPTextConfig(**TEXT_CONFIG)).eval()
    return unet, vae, text_encoder


class TextEncoderExport(torch.nn.Module):
    def __init__(self, m): super().__init__(); self.m = m
    def forward(self, input_ids): return self.m(input_ids)[0]


class UnetExport(torch.nn.Module):
    def __init__(self, m): super().__init__(); self.m = m
    def forward(self, sample, timestep, encoder_hidden_states):
        return self.m(sample, timestep, encoder_hidden_states, return_dict=False)[0]


class VaeEncoderExport(torch.nn.Module):
    """optimum's vae_encoder: mean ‖ logvar ("latent_parameters"), sampled by the pipeline."""
    def __init__(self, m): super().__init__(); self.m = m
    def forward(self, sample): return self.m.quant_conv(self.m.encoder(sample))


class VaeDecoderExport(torch.nn.Module):
    def __init__(self, m): super().__init__(); self.m = m
    def forward(self, latent_sample): return self.m.decoder(self.m.post_quant_conv(latent_sample))


def export(model, args, part, input_names, output_names, axes):
    os.makedirs(os.path.join(MODEL, part), exist_ok=True)
    path = os.path.join(MODEL, part, "model.onnx")
    with torch.no_grad():
        torch.onnx.export(model, args, path, input_names=input_names, output_names=output_names, dynamic_axes=axes,
                          opset_version=OPSET, do_constant_folding=True)
    print("exported", part, os.path.getsize(path), "bytes", file=sys.stderr)


def write_json(path, value):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(value, f, indent=1)
        f.write("\n")


def export_model(unet, vae, text_encoder):
    hidden = TEXT_CONFIG["hidden_size"]
    export(TextEncoderExport(text_encoder), (torch.zeros(1, 77, dtype=torch.int64),), "text_encoder",
           ["input_ids"], ["last_hidden_state"], {"input_ids": {0: "batch"}, "last_hidden_state": {0: "batch"}})
    export(UnetExport(unet), (torch.randn(2, 9, 16, 16), torch.tensor([999.0]), torch.randn(2, 77, hidden)), "unet",
           ["sample", "timestep", "encoder_hidden_states"], ["out_sample"],
           {"sample": {0: "batch", 2: "height", 3: "width"}, "encoder_hidden_states": {0: "batch"},
            "out_sample": {0: "batch", 2: "height", 3: "width"}})
    export(VaeEncoderExport(vae), (torch.randn(1, 3, 64, 64),), "vae_encoder", ["sample"], ["latent_parameters"],
           {"sample": {0: "batch", 2: "height", 3: "width"}, "latent_parameters": {0: "batch", 2: "h", 3: "w"}})
    export(VaeDecoderExport(vae), (torch.randn(1, 4, 16, 16),), "vae_decoder", ["latent_sample"], ["sample"],
           {"latent_sample": {0: "batch", 2: "height", 3: "width"}, "sample": {0: "batch", 2: "H", 3: "W"}})
    listed = lambda config: {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()}
    write_json(os.path.join(MODEL, "model_index.json"), {"_class_name": "OnnxStableDiffusionInpaintPipeline", "_diffusers_version": diffusers.__version__})
    write_json(os.path.join(MODEL, "scheduler", "scheduler_config.json"), SCHEDULER_CONFIG)
    write_json(os.path.join(MODEL, "unet", "config.json"), {"_class_name": "UNet2DConditionModel", **listed(UNET_CONFIG)})
    for part in ("vae_encoder", "vae_decoder"):
        write_json(os.path.join(MODEL, part, "config.json"), {"_class_name": "AutoencoderKL", **listed(VAE_CONFIG)})
    write_json(os.path.join(MODEL, "text_encoder", "config.json"), {"architectures": ["CLIPTextModel"], "model_type": "clip_text_model", **TEXT_CONFIG})


def make_picture(width, height):
    """Smooth colour fields, a disc and a block, so every region of the UNet's receptive field has structure."""
    y, x = np.mgrid[0:height, 0:width]
    r = (128 + 100 * np.sin(x / 6.0) * np.cos(y / 8.0)).clip(0, 255)
    g = x * 255.0 / (width - 1)
    b = 255 - y * 255.0 / (height - 1)
    picture = np.stack([r, g, b], -1)
    picture[(x - 18) ** 2 + (y - 15) ** 2 < 8 ** 2] = [250, 240, 20]
    picture[height - 23:height - 5, 5:23] = [30, 60, 200]
    return Image.fromarray(picture.round().astype(np.uint8), "RGB")


def make_mask(width, height):
    """Edges off the 4- and 8-pixel grids, a disc, and 127/128 grey patches on both sides of the 0.5 threshold."""
    y, x = np.mgrid[0:height, 0:width]
    mask = np.zeros((height, width), np.uint8)
    mask[15:height - 17, 23:width - 13] = 255
    mask[(x - (width - 10)) ** 2 + (y - (height - 10)) ** 2 < 6 ** 2] = 255
    mask[3:6, 3:6] = 127
    mask[8:11, 3:6] = 128
    return Image.fromarray(mask, "L")


def main():
    unet, vae, text_encoder = build_models()
    export_model(unet, vae, text_encoder)
    tokenizer = CLIPTokenizer(os.path.join(VOCABULARY, "vocab.json"), os.path.join(VOCABULARY, "merges.txt"))
    os.makedirs(CASES, exist_ok=True)
    listed = []
    for case in CASES_LIST:
        width, height = case["width"], case["height"]
        picture_file, mask_file = f"picture-{width}x{height}.png", f"mask-{width}x{height}.png"
        make_picture(width, height).save(os.path.join(CASES, picture_file))
        make_mask(width, height).save(os.path.join(CASES, mask_file))
        pipe = StableDiffusionInpaintPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
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
            outputs.append(f"{case['name']}-{n}.png")
            image.save(os.path.join(CASES, outputs[-1]))
        listed.append({**case, "prompt": PROMPT, "negative": "", "picture": picture_file, "mask": mask_file, "diffusers_images": outputs})
        print(case["name"], "done", file=sys.stderr)
    write_json(os.path.join(CASES, "cases.json"), {"diffusers": diffusers.__version__, "torch": torch.__version__, "cases": listed})


if __name__ == "__main__":
    main()
