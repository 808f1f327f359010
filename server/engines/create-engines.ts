import path from "node:path";
import type { NodeEngines } from "../../nodes/node-definition.ts";
import { HELPER_MODELS } from "../models/helper-model-catalog.ts";
import { helperModelPresent } from "../models/helper-model-layout.ts";
import { LearnedFillEngine } from "./fill/learned-fill-engine.ts";
import { OnnxEngine } from "./onnx/onnx-engine.ts";
import type { LoraUse } from "../models/checkpoint/model-recipe.ts";
import { SegmentEngine } from "./segment/segment-engine.ts";
import { parseDevice } from "./onnx/onnx-engine.ts";
import { SegmindClient, type SegmindClientOptions } from "./segmind/segmind-client.ts";

export interface EngineOptions {
  readonly modelDir?: string;
  /** LoRAs on the server's own model (`--lora`). */
  readonly loras?: readonly LoraUse[];
  readonly device?: string;
  /** Where helper models are (models/mobile-sam, models/lama); $MASKFLOW_MODELS_DIR or ./models by default. */
  readonly modelsDir?: string;
  /** Segmind client settings; by default SEGMIND_API_KEY and SEGMIND_BASE_URL. */
  readonly segmind?: SegmindClientOptions;
}

export interface Engines {
  readonly nodeEngines: NodeEngines;
  readonly local: OnnxEngine;
  readonly segmind: SegmindClient;
  /** Helper models (models/mobile-sam, models/lama), loaded on first use on the same device as the local engine. */
  readonly segment: SegmentEngine;
  readonly learnedFill: LearnedFillEngine;
  /** What `maskflow serve` prints and GET /api/system reports. */
  status(): Record<string, { summary: string } & Record<string, unknown>>;
  /** Unloads every model's sessions and the cached embeddings (POST /api/free); they load again on next use. */
  releaseModels(): Promise<void>;
  dispose(): Promise<void>;
}

/** The engines this process offers to nodes; models load on first use, not here. */
export async function createEngines(options: EngineOptions = {}): Promise<Engines> {
  const local = new OnnxEngine({
    defaultModelDir: options.modelDir,
    modelsDir: options.modelsDir,
    defaultLoras: options.loras,
    device: options.device === undefined ? undefined : parseDevice(options.device),
  });
  const segmind = new SegmindClient(options.segmind);
  const segment = new SegmentEngine({ device: local.device, modelsDir: options.modelsDir });
  const learnedFill = new LearnedFillEngine({ device: local.device, modelsDir: options.modelsDir });
  return {
    nodeEngines: { local, segmind, segment, learnedFill },
    local,
    segmind,
    segment,
    learnedFill,
    status: () => ({
      local: local.status(),
      segmind: {
        summary: segmind.hasApiKey ? `Segmind API at ${segmind.baseUrl} (key set)` : "Segmind API: no key (set SEGMIND_API_KEY to use backend segmind)",
        keySet: segmind.hasApiKey,
        baseUrl: segmind.baseUrl,
      },
      helpers: helperStatus(segment.modelsDir),
    }),
    releaseModels: async () => {
      await Promise.all([local.release(), segment.release(), learnedFill.release()]);
    },
    dispose: async () => {
      await Promise.all([local.release(), segment.release(), learnedFill.release()]);
    },
  };
}

/** Which helper models are in the models folder, for GET /api/system (the editor marks nodes that need a missing one). */
function helperStatus(modelsDir: string): { summary: string; models: Array<{ name: string; title: string; installed: boolean; pullCommand: string }> } {
  const models = HELPER_MODELS.map((model) => ({
    name: model.name,
    title: model.title,
    installed: helperModelPresent(path.join(modelsDir, model.name), model),
    pullCommand: `npx maskflow models pull ${model.name}`,
  }));
  const summary = models.map((model) => (model.installed ? `${model.name} installed` : `${model.name} not installed (\`${model.pullCommand}\`)`)).join(", ");
  return { summary: `helper models in ${modelsDir}: ${summary}`, models };
}
