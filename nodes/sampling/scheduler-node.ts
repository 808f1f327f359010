import { randomUUID } from "node:crypto";
import { SCHEDULER_NAMES } from "../../server/engines/onnx/schedulers/index.ts";
import { randomSeed } from "../../server/engines/onnx/torch-generator.ts";
import { defineNode } from "../node-definition.ts";
import { seedForJson } from "./seed-for-json.ts";

/** The sampling settings of the Segmind API in one node: scheduler, steps, guidance, strength and seed. */
export const SchedulerNode = defineNode({
  type: "Scheduler",
  category: "sampling",
  description:
    "How to denoise: the scheduler (the eleven of the Segmind API, and LCM for LCM-distilled models: 4–8 steps, " +
    "guidance 1–2, local backend only), steps, guidance scale, strength " +
    "(1 repaints the mask from noise; less keeps some of the original) and the torch seed (-1: random, reported).",
  inputs: {
    scheduler: { type: "STRING", widget: "combo", options: SCHEDULER_NAMES, default: "DDIM" },
    steps: { type: "INT", widget: "number", default: 25, min: 1, max: 150, step: 1 },
    guidance: { type: "FLOAT", widget: "number", default: 7.5, min: 0, max: 25, step: 0.1 },
    strength: { type: "FLOAT", widget: "number", default: 1, min: 0.01, max: 1, step: 0.01 },
    seed: { type: "SEED", widget: "seed", default: 0 },
  },
  outputs: { scheduler: { type: "SCHEDULER" } },
  check({ steps, strength }) {
    // The strength is the share of the steps that run (img2img): it must leave at least one, as the engine requires.
    if (steps === undefined || strength === undefined || Math.trunc(steps * strength) >= 1) return [];
    return [{ input: "strength", message: `${strength} × ${steps} steps leaves no step to run; raise strength or steps so that strength × steps ≥ 1` }];
  },
  fingerprint({ seed }) {
    return seed === -1n ? randomUUID() : "";
  },
  async run({ scheduler, steps, guidance, strength, seed }, ctx) {
    const resolved = seed === -1n ? randomSeed() : seed;
    ctx.report({ seed: seedForJson(resolved) });
    return { scheduler: { name: scheduler, steps, guidance, strength, seed: resolved } };
  },
});
