import type { NodeEngines } from "../../nodes/node-definition.ts";
import { OnnxEngine } from "./onnx/onnx-engine.ts";
import { parseDevice } from "./onnx/onnx-engine.ts";
import { SegmindClient, type SegmindClientOptions } from "./segmind/segmind-client.ts";

export interface EngineOptions {
  readonly modelDir?: string;
  readonly device?: string;
  /** Segmind client settings; by default SEGMIND_API_KEY and SEGMIND_BASE_URL. */
  readonly segmind?: SegmindClientOptions;
}

export interface Engines {
  readonly nodeEngines: NodeEngines;
  readonly local: OnnxEngine;
  readonly segmind: SegmindClient;
  /** What `maskflow serve` prints and GET /api/system reports. */
  status(): Record<string, { summary: string } & Record<string, unknown>>;
  dispose(): Promise<void>;
}

/** The engines this process offers to nodes; models load on first use, not here. */
export async function createEngines(options: EngineOptions = {}): Promise<Engines> {
  const local = new OnnxEngine({
    defaultModelDir: options.modelDir,
    device: options.device === undefined ? undefined : parseDevice(options.device),
  });
  const segmind = new SegmindClient(options.segmind);
  return {
    nodeEngines: { local, segmind },
    local,
    segmind,
    status: () => ({
      local: local.status(),
      segmind: {
        summary: segmind.hasApiKey ? `Segmind API at ${segmind.baseUrl} (key set)` : "Segmind API: no key (set SEGMIND_API_KEY to use backend segmind)",
        keySet: segmind.hasApiKey,
        baseUrl: segmind.baseUrl,
      },
    }),
    dispose: () => local.release(),
  };
}
