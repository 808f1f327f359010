/**
 * segment-anything's ResizeLongestSide and the ONNX decoder's prompt tensors: clicks and a box in the picture's
 * pixels → point_coords and point_labels in the 1024 frame, as SamPredictor and notebooks/onnx_model_example do.
 */
import { SAM_IMAGE_SIZE } from "./sam-model.ts";

export interface SamPoint {
  readonly x: number;
  readonly y: number;
  /** true: part of the object (label 1); false: not (label 0). */
  readonly positive: boolean;
}

/** Corners in picture pixels, left ≤ right, top ≤ bottom. */
export interface SamBox {
  readonly left: number;
  readonly top: number;
  readonly right: number;
  readonly bottom: number;
}

export interface SamPrompt {
  readonly points: readonly SamPoint[];
  readonly box?: SamBox;
}

/** ResizeLongestSide.get_preprocess_shape: the size the picture is resized to, longest side 1024, rounded half up. */
export function resizedSize(width: number, height: number, target = SAM_IMAGE_SIZE): { width: number; height: number } {
  const scale = target / Math.max(width, height);
  return { width: Math.floor(width * scale + 0.5), height: Math.floor(height * scale + 0.5) };
}

/** A problem with a prompt, in words that name the field; undefined when the decoder can take it. */
export function promptProblem(prompt: SamPrompt, width: number, height: number): string | undefined {
  if (prompt.points.length === 0 && !prompt.box) return "give at least one point or a box";
  for (const [i, point] of prompt.points.entries()) {
    if (!(point.x >= 0 && point.x < width && point.y >= 0 && point.y < height)) {
      return `points[${i}] (${point.x}, ${point.y}) is outside the ${width}×${height} picture`;
    }
  }
  const box = prompt.box;
  if (box) {
    if (!(box.left >= 0 && box.top >= 0 && box.right <= width && box.bottom <= height)) return `box (${box.left}, ${box.top})–(${box.right}, ${box.bottom}) is outside the ${width}×${height} picture`;
    if (!(box.right > box.left && box.bottom > box.top)) return "box must have right > left and bottom > top";
  }
  return undefined;
}

/**
 * The decoder's point_coords (1×N×2) and point_labels (1×N): clicks as labels 1 and 0, a box as its two corners
 * labelled 2 and 3; without a box a padding point (0, 0) labelled −1 closes the list, as SAM's ONNX example does.
 * Coordinates are scaled into the resized frame (apply_coords).
 */
export function promptTensors(prompt: SamPrompt, width: number, height: number): { coords: Float32Array; labels: Float32Array; count: number } {
  const resized = resizedSize(width, height);
  const sx = resized.width / width;
  const sy = resized.height / height;
  const points: Array<[number, number, number]> = prompt.points.map((point) => [point.x * sx, point.y * sy, point.positive ? 1 : 0]);
  if (prompt.box) {
    points.push([prompt.box.left * sx, prompt.box.top * sy, 2], [prompt.box.right * sx, prompt.box.bottom * sy, 3]);
  } else {
    points.push([0, 0, -1]);
  }
  const coords = new Float32Array(points.length * 2);
  const labels = new Float32Array(points.length);
  points.forEach(([x, y, label], i) => {
    coords[2 * i] = x;
    coords[2 * i + 1] = y;
    labels[i] = label;
  });
  return { coords, labels, count: points.length };
}
