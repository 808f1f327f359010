import type { NodeEngines } from "../../nodes/node-definition.ts";
import { OnnxEngine } from "./onnx/onnx-engine.ts";
import { parseDevice } from "./onnx/onnx-engine.ts";

export interface EngineOptions {
  readonly modelDir?: string;
  readonly device?: string;
}

export interface Engines {
  readonly nodeEngines: NodeEngines;
  readonly local: OnnxEngine;
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
  return {
    nodeEngines: { local },
    local,
    status: () => ({ local: local.status() }),
    dispose: () => local.release(),
  };
}
