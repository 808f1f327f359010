/**
 * What a node is: a declared schema (inputs with their widgets, outputs) plus one run function,
 * in the spirit of ComfyUI's INPUT_TYPES / RETURN_TYPES / FUNCTION, but typed end to end.
 */
import type { LocalInpaintEngine } from "../server/engines/onnx/onnx-engine.ts";
import type { SegmindClient } from "../server/engines/segmind/segmind-client.ts";
import type { LearnedFillEngine } from "../server/engines/fill/learned-fill-engine.ts";
import type { SegmentEngine } from "../server/engines/segment/segment-engine.ts";
import type { Mask, RgbImage, SocketType, SocketValues } from "./socket-types.ts";

export type WidgetKind = "number" | "slider" | "combo" | "text" | "multiline" | "seed" | "toggle" | "image" | "mask" | "checkpoint" | "lora";

export interface InputSpec {
  readonly type: SocketType;
  /** How the editor shows a literal value; absent for link-only inputs (IMAGE, MASK, …). */
  readonly widget?: WidgetKind;
  readonly default?: string | number | boolean;
  readonly min?: number;
  readonly max?: number;
  readonly step?: number;
  /** Allowed values of a combo. */
  readonly options?: readonly string[];
  readonly optional?: boolean;
  readonly description?: string;
}

export interface OutputSpec {
  readonly type: SocketType;
  readonly description?: string;
}

/** A picture a node wants the user to see: served by GET /api/view. */
export interface ImageRef {
  readonly filename: string;
  readonly subfolder: string;
  readonly type: "output" | "input" | "temp";
}

export interface ProgressUpdate {
  readonly value: number;
  readonly max: number;
  /** What is being counted when it is not the node's main work, e.g. "loading model". */
  readonly label?: string;
  /** A small picture of the work so far (the current latent projected to RGB). */
  readonly preview?: RgbImage;
}

export interface NodeStorage {
  /** Absolute path of a file in the input folder; throws on names that leave it. */
  inputPath(filename: string): string;
  /** Writes bytes into the output (or temp) folder atomically and returns the reference to show. */
  writeImage(bytes: Uint8Array, options: { prefix: string; extension: string; type: "output" | "temp" }): Promise<ImageRef>;
}

/** Where the pictures a workflow names are looked for, for checks made before anything runs. */
export interface InputFileLookup {
  /** Absolute path of a file the user named (the first folder that has it); throws on names that leave the folders. */
  inputPath(filename: string): string;
  /** The folders searched, in order, to say where a missing file was looked for. */
  readonly inputFolders: readonly string[];
}

/** One thing a node's check found wrong with one of its inputs. */
export interface InputProblem<Name extends string = string> {
  readonly input: Name;
  readonly message: string;
}

/** What a check may look at besides the inputs; never an engine or a model (checks run before anything loads). */
export interface CheckContext {
  /** Present where files can be looked for (the CLI with its data folder); absent for a document on its own. */
  readonly files?: InputFileLookup;
}

export interface NodeLogger {
  info(message: string): void;
  warn(message: string): void;
}

/** Engines a node can ask for; filled by the server with what is installed. */
export interface NodeEngines {
  /** Local Stable Diffusion on onnxruntime. */
  readonly local?: LocalInpaintEngine;
  /** Segmind's hosted API (the key is checked when a node uses it). */
  readonly segmind?: SegmindClient;
  /** Segment Anything for click-to-select (the SegmentAnything node, POST /api/segment). */
  readonly segment?: SegmentEngine;
  /** LaMa for learned object removal (the LearnedFill node). */
  readonly learnedFill?: LearnedFillEngine;
}

export interface NodeContext {
  readonly nodeId: string;
  readonly jobId: string;
  readonly signal: AbortSignal;
  /** Reports progress; throws an interruption error when the job was cancelled (the node's check point). */
  progress(update: ProgressUpdate): void;
  /** Shows pictures on the node in the editor and records them in the job's history. */
  show(images: readonly ImageRef[]): void;
  /** Extra values recorded with the outputs in history, e.g. the seed a -1 resolved to. */
  report(values: Readonly<Record<string, string | number | boolean>>): void;
  readonly storage: NodeStorage;
  readonly logger: NodeLogger;
  readonly engines: NodeEngines;
  /** The whole workflow document being run, for nodes that embed it (SaveImage). */
  readonly workflow: unknown;
}

export type InputSpecs = Readonly<Record<string, InputSpec>>;
export type OutputSpecs = Readonly<Record<string, OutputSpec>>;

type ValueOf<S extends InputSpec> = SocketValues[S["type"]];

/** The run function's inputs, typed from the declared schema: optional inputs may be undefined. */
export type InputsOf<I extends InputSpecs> = {
  readonly [K in keyof I]: I[K] extends { optional: true } ? ValueOf<I[K]> | undefined : ValueOf<I[K]>;
};

/**
 * What a check sees: the literal inputs with defaults applied and seeds as bigint. Linked inputs are
 * absent, since their values exist only once the nodes before have run.
 */
export type LiteralInputsOf<I extends InputSpecs> = { readonly [K in keyof I]?: ValueOf<I[K]> };

export type OutputsOf<O extends OutputSpecs> = { readonly [K in keyof O]: SocketValues[O[K]["type"]] };

export interface NodeDefinition<I extends InputSpecs = InputSpecs, O extends OutputSpecs = OutputSpecs> {
  readonly type: string;
  readonly category: string;
  readonly displayName?: string;
  readonly description: string;
  readonly inputs: I;
  readonly outputs: O;
  /** Output nodes (SaveImage, PreviewImage) are the roots the executor works back from. */
  readonly isOutput?: boolean;
  /**
   * Extra text folded into the cache key, for results that depend on more than the inputs:
   * a file's modification time, or a fresh random seed when the user asked for -1.
   */
  fingerprint?(inputs: InputsOf<I>, ctx: Pick<NodeContext, "storage">): string | Promise<string>;
  /**
   * Checks that need no model and no upstream result (a file exists, a size the model takes, steps ×
   * strength leaves a step), so `validate` and a queued job find them before anything runs. Only
   * called on inputs that already passed the schema's checks (type, range, options).
   */
  check?(inputs: LiteralInputsOf<I>, ctx: CheckContext): readonly InputProblem<keyof I & string>[];
  run(inputs: InputsOf<I>, ctx: NodeContext): Promise<OutputsOf<O>>;
}

/** The erased form the registry and executor hold. */
export interface AnyNodeDefinition {
  readonly type: string;
  readonly category: string;
  readonly displayName?: string;
  readonly description: string;
  readonly inputs: InputSpecs;
  readonly outputs: OutputSpecs;
  readonly isOutput?: boolean;
  fingerprint?(inputs: Readonly<Record<string, unknown>>, ctx: Pick<NodeContext, "storage">): string | Promise<string>;
  check?(inputs: Readonly<Record<string, unknown>>, ctx: CheckContext): readonly InputProblem[];
  run(inputs: Readonly<Record<string, unknown>>, ctx: NodeContext): Promise<Readonly<Record<string, unknown>>>;
}

/** Declares a node; `as const` on the specs is inferred, so run() is checked against them. */
export function defineNode<const I extends InputSpecs, const O extends OutputSpecs>(
  definition: NodeDefinition<I, O>,
): AnyNodeDefinition {
  // The executor validates every input against the schema before run() and check(), which makes this erasure sound.
  return definition as unknown as AnyNodeDefinition;
}

export type { Mask, RgbImage };
