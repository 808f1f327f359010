/**
 * Which files of a hub repository make up the ONNX pipeline folder Maskflow loads
 * (the layout optimum and diffusers' ONNX export write), and which are required.
 */

const COMPONENTS = ["text_encoder", "unet", "vae_encoder", "vae_decoder", "tokenizer", "scheduler", "feature_extractor"] as const;

/** Weights in other formats: a repository often carries them next to the ONNX files, and they are gigabytes. */
const FOREIGN_WEIGHTS = /\.(safetensors|bin|ckpt|pt|pth|msgpack|h5|gguf|onnx\.pb)$/i;

/** The files Maskflow needs; anything else in the repository (safety_checker, PyTorch/Flax weights, docs) is skipped. */
export function isNeededFile(filePath: string): boolean {
  if (filePath === "model_index.json") return true;
  const [component, ...rest] = filePath.split("/");
  if (!(COMPONENTS as readonly string[]).includes(component) || rest.length === 0) return false;
  const name = rest.join("/");
  if (FOREIGN_WEIGHTS.test(name)) return false;
  switch (component) {
    case "tokenizer":
    case "scheduler":
    case "feature_extractor":
      return name.endsWith(".json") || name.endsWith(".txt");
    default:
      // model.onnx, its external data (model.onnx_data, weights.pb, *.onnx.data) and the component's config.json.
      return name.endsWith(".onnx") || name.endsWith(".onnx_data") || name.endsWith(".onnx.data") || name === "weights.pb" || name === "config.json";
  }
}

/**
 * Files without which the pipeline cannot load; a repository lacking one is not an ONNX SD export.
 * tokenizer/ is not among them: every SD 1.5 model uses CLIP's vocabulary, which Maskflow ships.
 */
export const REQUIRED_FILES = [
  "model_index.json",
  "text_encoder/model.onnx",
  "unet/model.onnx",
  "vae_encoder/model.onnx",
  "vae_decoder/model.onnx",
  "scheduler/scheduler_config.json",
] as const;

export function missingRequiredFiles(paths: Iterable<string>): string[] {
  const present = new Set(paths);
  return REQUIRED_FILES.filter((file) => !present.has(file));
}
