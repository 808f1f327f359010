/**
 * The ONNX SD 1.5 inpainting export `maskflow models pull` fetches when no repository is named.
 *
 * runwayml/stable-diffusion-inpainting (whose "onnx" branch diffusers' docs used to point at) was deleted
 * from the hub in 2024, and its mirrors (stable-diffusion-v1-5/stable-diffusion-inpainting, …) carry PyTorch
 * weights only. This community export has the optimum/diffusers ONNX layout of SD 1.5 inpainting (fp16).
 * Anyone who wants fp32 or a pinned provenance exports their own with optimum (see the README).
 */
export const DEFAULT_MODEL_REPO = "jdp8/sd-1-5-inpainting-fp16";
export const DEFAULT_MODEL_REVISION = "main";
