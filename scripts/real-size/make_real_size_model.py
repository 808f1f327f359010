#!/usr/bin/python3
"""The full-size Stable Diffusion 1.5 inpainting pipeline with random weights, as an ONNX folder in optimum's layout.

Built from diffusers' own classes (UNet2DConditionModel, AutoencoderKL) at SD 1.5 inpainting's sizes, and a CLIP
ViT-L/14 text encoder (transformers' CLIPTextModel structure, written out below so transformers is not needed),
torch.manual_seed(0) random weights, exported with torch.onnx (opset 17). Its pictures are noise; its sizes,
operators, memory and time are the real model's. Offline: it needs Debian's python3-torch, python3-onnx,
python3-numpy and diffusers v0.30.3's sources (https://github.com/huggingface/diffusers/tree/v0.30.3, src/, and
huggingface_hub's src/, which diffusers imports; both Apache-2.0, see LICENSE-diffusers.txt here).

Usage:
  /usr/bin/python3 scripts/real-size/make_real_size_model.py OUT_DIR --diffusers-src PATH [--hfhub-src PATH] [--fp16 OUT_FP16_DIR]
(or put those source folders on PYTHONPATH instead). About 6 GB of disk for both folders; the UNet export peaks
near 10 GB of memory and takes minutes.
"""
import argparse
import gc
import importlib.machinery
import json
import os
import sys
import time
import types

PARTS = ["text_encoder", "unet", "vae_encoder", "vae_decoder"]

# runwayml/stable-diffusion-inpainting's unet/config.json (the fields that shape the network).
UNET_CONFIG = dict(
    sample_size=64, in_channels=9, out_channels=4, layers_per_block=2, block_out_channels=[320, 640, 1280, 1280],
    down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32, flip_sin_to_cos=True, freq_shift=0,
    act_fn="silu", downsample_padding=1, mid_block_scale_factor=1, norm_eps=1e-5, center_input_sample=False,
)
# Its vae/config.json.
VAE_CONFIG = dict(
    in_channels=3, out_channels=3, latent_channels=4, block_out_channels=[128, 256, 512, 512], layers_per_block=2,
    down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4, act_fn="silu",
    norm_num_groups=32, sample_size=512, scaling_factor=0.18215,
)
# Its text_encoder/config.json (CLIP ViT-L/14's text tower).
TEXT_CONFIG = dict(
    vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
    max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5, bos_token_id=0, eos_token_id=2, pad_token_id=1,
)
# Its scheduler/scheduler_config.json.
SCHEDULER_CONFIG = {
    "_class_name": "PNDMScheduler", "num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
    "beta_schedule": "scaled_linear", "steps_offset": 1, "set_alpha_to_one": False, "skip_prk_steps": True,
    "clip_sample": False, "prediction_type": "epsilon", "trained_betas": None,
}


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def import_diffusers(args):
    for source in (args.hfhub_src, args.diffusers_src):
        if source:
            sys.path.insert(0, os.path.abspath(source))
    try:
        import safetensors  # noqa: F401
    except ImportError:
        # diffusers imports safetensors at start-up; nothing here reads or writes a .safetensors file, and Debian
        # has no package for it, so an empty module stands in, failing loudly if anything does use it.
        def refuse(*_args, **_kwargs):
            raise RuntimeError("safetensors is not installed; make_real_size_model.py never loads .safetensors files")
        for name in ("safetensors", "safetensors.torch"):
            module = types.ModuleType(name)
            module.__spec__ = importlib.machinery.ModuleSpec(name, None)
            for attribute in ("safe_open", "load_file", "save_file", "load", "save"):
                setattr(module, attribute, refuse)
            module.SafetensorError = RuntimeError
            sys.modules[name] = module
        sys.modules["safetensors"].torch = sys.modules["safetensors.torch"]
    try:
        import diffusers
        from diffusers import AutoencoderKL, UNet2DConditionModel
    except ImportError as error:
        raise SystemExit(
            f"cannot import diffusers ({error}): pass --diffusers-src DIFFUSERS/src and --hfhub-src HUGGINGFACE_HUB/src "
            "(diffusers v0.30.3, the last release whose models import on Debian's torch 1.13)"
        )
    log(f"diffusers {diffusers.__version__} from {os.path.dirname(diffusers.__file__)}")
    return UNet2DConditionModel, AutoencoderKL


def clip_text_model(torch):
    """transformers' CLIPTextModel (eager attention, quick-GELU, pre-LN, causal mask, final LN), last_hidden_state only."""
    nn = torch.nn
    c = TEXT_CONFIG

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.heads, self.head_dim = c["num_attention_heads"], c["hidden_size"] // c["num_attention_heads"]
            self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(c["hidden_size"], c["hidden_size"]) for _ in range(4))

        def forward(self, x, mask):
            b, n, width = x.shape
            split = lambda t: t.view(b, n, self.heads, self.head_dim).transpose(1, 2)
            q, k, v = split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
            weights = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) * self.head_dim ** -0.5 + mask, dim=-1)
            return self.out_proj(torch.matmul(weights, v).transpose(1, 2).reshape(b, n, width))

    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer_norm1, self.layer_norm2 = (nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"]) for _ in range(2))
            self.self_attn = Attention()
            self.fc1, self.fc2 = nn.Linear(c["hidden_size"], c["intermediate_size"]), nn.Linear(c["intermediate_size"], c["hidden_size"])

        def forward(self, x, mask):
            x = x + self.self_attn(self.layer_norm1(x), mask)
            h = self.fc1(self.layer_norm2(x))
            return x + self.fc2(h * torch.sigmoid(1.702 * h))

    class TextModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.token_embedding = nn.Embedding(c["vocab_size"], c["hidden_size"])
            self.position_embedding = nn.Embedding(c["max_position_embeddings"], c["hidden_size"])
            self.layers = nn.ModuleList(Layer() for _ in range(c["num_hidden_layers"]))
            self.final_layer_norm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])

        def forward(self, input_ids):
            n = input_ids.shape[-1]
            x = self.token_embedding(input_ids.long()) + self.position_embedding(torch.arange(n))
            mask = torch.triu(torch.full((n, n), torch.finfo(torch.float32).min), diagonal=1)
            for layer in self.layers:
                x = layer(x, mask)
            return self.final_layer_norm(x)

    return TextModel().eval()


def export(torch, module, inputs, path, input_names, output_names, dynamic_axes):
    """torch.onnx.export, then every weight moved into one model.onnx_data beside model.onnx when over 2 GB (as optimum does)."""
    import onnx

    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    started = time.time()
    scratch = os.path.join(folder, "export")
    os.makedirs(scratch, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(module, inputs, os.path.join(scratch, "model.onnx"), input_names=input_names, output_names=output_names,
                          dynamic_axes=dynamic_axes, opset_version=17, do_constant_folding=True)
    model = onnx.load(os.path.join(scratch, "model.onnx"), load_external_data=True)
    size = sum(t.ByteSize() for t in model.graph.initializer)
    for name in ("model.onnx", "model.onnx_data"):
        if os.path.exists(os.path.join(folder, name)):
            os.remove(os.path.join(folder, name))
    if size > 2_000_000_000:
        onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True, location="model.onnx_data", size_threshold=1024)
    else:
        onnx.save_model(model, path)
    del model
    for name in os.listdir(scratch):
        os.remove(os.path.join(scratch, name))
    os.rmdir(scratch)
    gc.collect()
    log(f"{path}: {len(output_names)} output(s), weights {size / 1e9:.2f} GB, {time.time() - started:.0f} s")


def write_json(path, value):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as file:
        json.dump(value, file, indent=2)


def make_fp32(out, unet_class, vae_class, parts):
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    write_json(os.path.join(out, "model_index.json"), {
        "_class_name": "OnnxStableDiffusionInpaintPipeline", "_diffusers_version": "0.30.3",
        "_maskflow_note": "random weights (scripts/real-size/make_real_size_model.py): real sizes, noise pictures",
    })
    write_json(os.path.join(out, "scheduler", "scheduler_config.json"), SCHEDULER_CONFIG)
    # One module at a time: the UNet alone is 3.4 GB of fp32 weights, and its export needs about twice that.
    if "text_encoder" in parts:
        text = clip_text_model(torch)
        log(f"text encoder: {sum(p.numel() for p in text.parameters()) / 1e6:.1f} M parameters")
        export(torch, text, (torch.zeros(1, 77, dtype=torch.int32),), os.path.join(out, "text_encoder", "model.onnx"),
               ["input_ids"], ["last_hidden_state"], {"input_ids": {0: "batch_size"}, "last_hidden_state": {0: "batch_size"}})
        write_json(os.path.join(out, "text_encoder", "config.json"), {"architectures": ["CLIPTextModel"], "model_type": "clip_text_model", **TEXT_CONFIG})
        del text
    if "vae_encoder" in parts or "vae_decoder" in parts:
        vae = vae_class(**VAE_CONFIG).eval()
        log(f"VAE: {sum(p.numel() for p in vae.parameters()) / 1e6:.1f} M parameters")
        vae_json = {"_class_name": "AutoencoderKL", **VAE_CONFIG}

        class Encoder(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.vae = vae

            def forward(self, sample):
                return self.vae.quant_conv(self.vae.encoder(sample))  # mean ‖ logvar, as optimum ≥ 1.14 exports it

        class Decoder(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.vae = vae

            def forward(self, latent_sample):
                return self.vae.decoder(self.vae.post_quant_conv(latent_sample))

        if "vae_encoder" in parts:
            export(torch, Encoder(), (torch.randn(1, 3, 512, 512),), os.path.join(out, "vae_encoder", "model.onnx"), ["sample"], ["latent_parameters"],
                   {"sample": {0: "batch_size", 2: "height", 3: "width"}, "latent_parameters": {0: "batch_size", 2: "height_latent", 3: "width_latent"}})
            write_json(os.path.join(out, "vae_encoder", "config.json"), vae_json)
        if "vae_decoder" in parts:
            export(torch, Decoder(), (torch.randn(1, 4, 64, 64),), os.path.join(out, "vae_decoder", "model.onnx"), ["latent_sample"], ["sample"],
                   {"latent_sample": {0: "batch_size", 2: "height_latent", 3: "width_latent"}, "sample": {0: "batch_size", 2: "height", 3: "width"}})
            write_json(os.path.join(out, "vae_decoder", "config.json"), vae_json)
        del vae
    if "unet" in parts:
        unet = unet_class(**UNET_CONFIG).eval()
        log(f"UNet: {sum(p.numel() for p in unet.parameters()) / 1e6:.1f} M parameters")

        class Unet(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.unet = unet

            def forward(self, sample, timestep, encoder_hidden_states):
                return self.unet(sample, timestep, encoder_hidden_states, return_dict=False)[0]

        export(torch, Unet(), (torch.randn(2, 9, 64, 64), torch.tensor([999], dtype=torch.int64), torch.randn(2, 77, 768)),
               os.path.join(out, "unet", "model.onnx"), ["sample", "timestep", "encoder_hidden_states"], ["out_sample"],
               {"sample": {0: "batch_size", 2: "height", 3: "width"}, "timestep": {0: "steps"},
                "encoder_hidden_states": {0: "batch_size", 1: "sequence_length"}, "out_sample": {0: "batch_size", 2: "height", 3: "width"}})
        write_json(os.path.join(out, "unet", "config.json"), {"_class_name": "UNet2DConditionModel", **UNET_CONFIG})
        del unet


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="folder to write (fp32); big: put it outside the repository, e.g. /tmp/real-size/sd15-inpaint-fp32")
    parser.add_argument("--diffusers-src", help="diffusers v0.30.3's src/ folder (or put it on PYTHONPATH)")
    parser.add_argument("--hfhub-src", help="huggingface_hub's src/ folder, if it is not installed (or put it on PYTHONPATH)")
    parser.add_argument("--fp16", metavar="DIR", help="also write an fp16 copy there (onnxconverter-common's conversion, see to_fp16.py)")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    args = parser.parse_args()
    parts = [p for p in args.parts.split(",") if p]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise SystemExit(f"--parts: unknown {', '.join(unknown)}; allowed: {', '.join(PARTS)}")
    unet_class, vae_class = import_diffusers(args)
    make_fp32(os.path.abspath(args.out), unet_class, vae_class, parts)
    if args.fp16:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from to_fp16 import convert_folder

        convert_folder(os.path.abspath(args.out), os.path.abspath(args.fp16), parts, log)
    log("done")


if __name__ == "__main__":
    main()
