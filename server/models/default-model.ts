/**
 * What `maskflow models pull` (and the editor's Download model) fetches when no repository is named: the canonical
 * SD 1.5 inpainting weights, as the diffusers folder of stable-diffusion-v1-5/stable-diffusion-inpainting (the
 * mirror of runwayml/stable-diffusion-inpainting, deleted from the hub in 2024), which Maskflow then BUILDS into
 * its own ONNX graphs locally (server/models/checkpoint/), instead of trusting somebody's ONNX export.
 *
 * Only the files the build and the pipeline need are fetched (see checkpoint-pull-layout.ts): model_index.json, the
 * UNet's, VAE's and text encoder's config.json and weights — the fp16 safetensors variant where the repository
 * publishes one (half the download; the build writes fp32 graphs either way), else the fp32 .safetensors — the
 * tokenizer and the scheduler config. Never the safety checker, the feature extractor, .bin or .ckpt files.
 *
 * The pin is the commit: 8a4288a7… is the revision another project pins for this repository. Every file is
 * verified against the size and sha256 the hub lists for it at that commit (LFS oids at a commit cannot change,
 * and the small git-stored files are checked against their git blob ids), and recorded in the downloads' pull
 * manifest. The sha256 values themselves are not copied here, as they are for the helper models: they could not be
 * read from where this was written (no network), so the pin is the commit plus verification against the hub's
 * own listing of it: bytes that differ from that listing are refused, but a mirror at HF_ENDPOINT that lists other
 * files under the commit's id is believed (its listing is all there is to check against).
 */
export const DEFAULT_MODEL_REPO = "stable-diffusion-v1-5/stable-diffusion-inpainting";
export const DEFAULT_MODEL_REVISION = "8a4288a76071f7280aedbdb3253bdb9e9d5d84bb";
