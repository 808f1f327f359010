/**
 * `--lora FILE[:STRENGTH_MODEL[:STRENGTH_CLIP]]`, as `maskflow run`, `serve` and `models import` take it: strengths
 * are read from the right, so a path with colons in it still works; one strength sets both (ComfyUI's default).
 */
import { stat } from "node:fs/promises";
import path from "node:path";
import type { LoraUse } from "../models/checkpoint/model-recipe.ts";

export const LORA_STRENGTH_LIMIT = 4;

const NUMBER = /^-?(\d+(\.\d*)?|\.\d+)$/;

export async function parseLoraOption(value: string, cwd = process.cwd()): Promise<LoraUse> {
  const parts = value.split(":");
  const strengths: number[] = [];
  while (strengths.length < 2 && parts.length > 1 && NUMBER.test(parts[parts.length - 1])) strengths.unshift(Number(parts.pop()));
  const file = path.resolve(cwd, parts.join(":"));
  for (const strength of strengths) {
    if (Math.abs(strength) > LORA_STRENGTH_LIMIT) {
      throw new Error(`--lora ${value}: a strength must be from −${LORA_STRENGTH_LIMIT} to ${LORA_STRENGTH_LIMIT}, got ${strength}`);
    }
  }
  if (!(await stat(file).catch(() => undefined))?.isFile()) {
    throw new Error(`--lora ${value}: no such file (the form is FILE[:STRENGTH_MODEL[:STRENGTH_CLIP]], strengths −4 to 4, default 1)`);
  }
  const strengthModel = strengths[0] ?? 1;
  return { file, strengthModel, strengthClip: strengths[1] ?? strengthModel, ignoreUnmatched: false };
}
