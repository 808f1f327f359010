import type { CropRegion } from "./mask/crop-region.ts";
import type { ModelRecipe } from "../server/models/checkpoint/model-recipe.ts";

/**
 * The values that travel along the links of a graph, one TypeScript type per socket type.
 * Images are raw interleaved RGB bytes so every node can hand them to sharp without a codec round trip.
 */

export const SOCKET_TYPES = [
  "IMAGE",
  "MASK",
  "PROMPT",
  "SCHEDULER",
  "MODEL",
  "INT",
  "FLOAT",
  "STRING",
  "BOOLEAN",
  "SEED",
  "CROP",
] as const;

export type SocketType = (typeof SOCKET_TYPES)[number];

/** One RGB picture, 8 bits per channel, rows top to bottom. */
export interface RgbImage {
  readonly width: number;
  readonly height: number;
  /** width × height × 3 bytes. */
  readonly data: Uint8Array;
}

/** A batch of pictures (an Inpaint with samples 4 gives four); most nodes map over it. */
export type ImageBatch = readonly RgbImage[];

/** One mask, 8 bits: 255 = repaint (white), 0 = keep. */
export interface Mask {
  readonly width: number;
  readonly height: number;
  /** width × height bytes. */
  readonly data: Uint8Array;
}

export interface PromptValue {
  readonly positive: string;
  readonly negative: string;
}

export interface SchedulerSettings {
  readonly name: string;
  readonly steps: number;
  readonly guidance: number;
  readonly strength: number;
  /** -1 resolved already: always a concrete torch seed (0 … 2^64 − 1). */
  readonly seed: bigint;
}

/** A model as a recipe (a checkpoint or model folder, its LoRAs, a merge), not weights: the engine builds it when a job needs it. */
export type ModelRef = ModelRecipe;

export interface SocketValues {
  IMAGE: ImageBatch;
  MASK: Mask;
  PROMPT: PromptValue;
  SCHEDULER: SchedulerSettings;
  MODEL: ModelRef;
  INT: number;
  FLOAT: number;
  STRING: string;
  BOOLEAN: boolean;
  SEED: bigint;
  CROP: CropRegion;
}

/** Socket types a user may type in as a widget value; the others only arrive over links. */
export const LITERAL_SOCKET_TYPES: ReadonlySet<SocketType> = new Set(["INT", "FLOAT", "STRING", "BOOLEAN", "SEED"]);
