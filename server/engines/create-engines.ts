import type { NodeEngines } from "../../nodes/node-definition.ts";

export interface EngineOptions {
  readonly modelDir?: string;
  readonly device?: string;
}

export interface Engines {
  readonly nodeEngines: NodeEngines;
  /** What `maskflow serve` prints and GET /api/system reports. */
  status(): Record<string, unknown>;
  dispose(): Promise<void>;
}

/** The engines this process offers to nodes. */
export async function createEngines(_options: EngineOptions = {}): Promise<Engines> {
  return {
    nodeEngines: {},
    status: () => ({}),
    dispose: async () => {},
  };
}
