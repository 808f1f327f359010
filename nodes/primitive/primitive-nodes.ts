/** Primitives: one widget each, so a value can be set once and linked into many nodes. */
import { randomUUID } from "node:crypto";
import { randomSeed } from "../../server/engines/onnx/torch-generator.ts";
import { defineNode } from "../node-definition.ts";
import { seedForJson } from "../sampling/seed-for-json.ts";

export const IntNode = defineNode({
  type: "Int",
  category: "primitive",
  description: "A whole number to link into other nodes.",
  inputs: { value: { type: "INT", widget: "number", default: 0, min: -(2 ** 53) + 1, max: 2 ** 53 - 1, step: 1 } },
  outputs: { value: { type: "INT" } },
  async run({ value }) {
    return { value };
  },
});

export const FloatNode = defineNode({
  type: "Float",
  category: "primitive",
  description: "A number to link into other nodes.",
  inputs: { value: { type: "FLOAT", widget: "number", default: 0, step: 0.01 } },
  outputs: { value: { type: "FLOAT" } },
  async run({ value }) {
    return { value };
  },
});

export const StringNode = defineNode({
  type: "String",
  category: "primitive",
  description: "Text to link into other nodes.",
  inputs: { value: { type: "STRING", widget: "multiline", default: "" } },
  outputs: { value: { type: "STRING" } },
  async run({ value }) {
    return { value };
  },
});

export const BooleanNode = defineNode({
  type: "Boolean",
  category: "primitive",
  description: "A true/false switch to link into other nodes.",
  inputs: { value: { type: "BOOLEAN", widget: "toggle", default: false } },
  outputs: { value: { type: "BOOLEAN" } },
  async run({ value }) {
    return { value };
  },
});

/** A seed as torch takes it; -1 draws a fresh 64-bit one on every run and reports it so the image can be reproduced. */
export const SeedNode = defineNode({
  type: "Seed",
  category: "primitive",
  description: "A torch seed (0 … 2^64 − 1); -1 picks a random seed on every run and reports it.",
  inputs: { seed: { type: "SEED", widget: "seed", default: 0 } },
  outputs: { seed: { type: "SEED" } },
  fingerprint({ seed }) {
    // A random seed must not be served from the cache: give each run its own key.
    return seed === -1n ? randomUUID() : "";
  },
  async run({ seed }, ctx) {
    const resolved = seed === -1n ? randomSeed() : seed;
    ctx.report({ seed: seedForJson(resolved) });
    return { seed: resolved };
  },
});

export const primitiveNodes = [IntNode, FloatNode, StringNode, BooleanNode, SeedNode];
