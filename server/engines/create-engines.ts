import type { NodeEngines } from "../../nodes/node-definition.ts";
import { LearnedFillEngine } from "./fill/learned-fill-engine.ts";
import { OnnxEngine } from "./onnx/onnx-engine.ts";
import { SegmentEngine } from "./segment/segment-engine.ts";
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
  /** Helper models (models/mobile-sam, models/lama), loaded on first use on the same device as the local engine. */
  readonly segment: SegmentEngine;
  readonly learnedFill: LearnedFillEngine;
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
  const segment = new SegmentEngine({ device: local.device });
  const learnedFill = new LearnedFillEngine({ device: local.device });
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
    }),
    dispose: async () => {
      await Promise.all([local.release(), segment.release(), learnedFill.release()]);
    },
  };
}
