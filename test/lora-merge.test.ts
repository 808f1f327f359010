/**
 * LoRAs as a user brings them, on the tiny SD 1.5 checkpoint: every format's modules land on the model's weights,
 * the two kohya namings give the same model, the merged weights are base + strength · alpha / rank · up · down,
 * strength 0 is the base to the byte, and files Maskflow cannot apply are refused in one line saying what they are.
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SD15_INPAINTING_ARCHITECTURE, unetSpecs } from "../scripts/checkpoints/sd15-checkpoint-layout.ts";
import type { ModelWeights } from "../server/engines/onnx/graph/model-weights.ts";
import type { CheckpointTensor } from "../server/models/checkpoint/checkpoint-tensor.ts";
import { mapLdmKey } from "../server/models/checkpoint/ldm-key-map.ts";
import { unetLdmKeys } from "../server/models/checkpoint/ldm-names.ts";
import { openLora, type LoraModule } from "../server/models/checkpoint/lora/lora-file.ts";
import { mapLoraModules } from "../server/models/checkpoint/lora/lora-key-map.ts";
import { addLoraProduct, addLoraProductScalar, loraSimdAvailable } from "../server/models/checkpoint/lora/lora-product.ts";
import { planLoras, withLoras, type LoraPlan } from "../server/models/checkpoint/lora/lora-weights.ts";
import type { LoraUse } from "../server/models/checkpoint/model-recipe.ts";
import { openSdCheckpoint, type SdCheckpoint } from "../server/models/checkpoint/open-sd-checkpoint.ts";
import { writeSafetensors, type FixtureTensor } from "./fixtures/checkpoint-writers.ts";
import { ensureTinyCheckpoints, type TinyCheckpointPaths } from "./fixtures/make-tiny-checkpoint.ts";
import { ensureTinyLoras, TINY_LORA_KINDS, tinyLoraModules, tinyLoraTensors, type TinyLoraPaths } from "./fixtures/make-tiny-lora.ts";

let tiny: TinyCheckpointPaths;
let loras: TinyLoraPaths;
let model: SdCheckpoint;
let dir: string;
let written = 0;

const use = (file: string, strengthModel: number, strengthClip: number, ignoreUnmatched = false): LoraUse => ({ file, strengthModel, strengthClip, ignoreUnmatched });
const parts = () => ({ unet: model.unet, textEncoder: model.textEncoder });
const layersPerBlock = () => model.architecture.unet.layersPerBlock;

/** A LoRA file of these tensors in the test's folder. */
async function loraFile(tensors: readonly FixtureTensor[]): Promise<string> {
  const file = path.join(dir, `lora-${written++}.safetensors`);
  await writeSafetensors(file, tensors);
  return file;
}

const pair = (module: string, down: readonly number[], up: readonly number[], suffixes = [".lora_down.weight", ".lora_up.weight"]): FixtureTensor[] => [
  { name: `${module}${suffixes[0]}`, dtype: "F32", shape: down, values: new Float32Array(down.reduce((a, b) => a * b, 1)).fill(0.01) },
  { name: `${module}${suffixes[1]}`, dtype: "F32", shape: up, values: new Float32Array(up.reduce((a, b) => a * b, 1)).fill(0.01) },
];

async function withPlan<T>(uses: LoraUse[], work: (plan: LoraPlan) => Promise<T>): Promise<T> {
  const plan = await planLoras(uses, parts(), layersPerBlock());
  try {
    return await work(plan);
  } finally {
    await plan.close();
  }
}

/** Every weight of the UNet and the text encoder, as read through `unet` and `textEncoder`. */
async function readAll(unet: ModelWeights, textEncoder: ModelWeights): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const name of model.unet.names) out.set(`unet:${name}`, await unet.read(name));
  for (const name of model.textEncoder.names) out.set(`text_encoder:${name}`, await textEncoder.read(name));
  return out;
}

const bytesEqual = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

beforeAll(async () => {
  tiny = await ensureTinyCheckpoints();
  loras = await ensureTinyLoras();
  model = await openSdCheckpoint(tiny.singleFile);
  dir = await mkdtemp(path.join(os.tmpdir(), "maskflow-lora-merge-"));
}, 120_000);

afterAll(async () => {
  await model?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("diffusers → LDM UNet names (the inverse of mapLdmKey)", () => {
  it("round-trips every UNet key of the tiny single file and of SD 1.5's layout", async () => {
    const tinyNames = model.unet.names;
    const inverse = unetLdmKeys(tinyNames, layersPerBlock());
    expect(inverse.size).toBe(tinyNames.length);
    for (const [name, ldm] of inverse) {
      expect(mapLdmKey(`model.diffusion_model.${ldm}`, { unetLayersPerBlock: layersPerBlock(), vaeLevels: 3 })?.name, ldm).toBe(name);
    }
    const full = unetSpecs(SD15_INPAINTING_ARCHITECTURE.unet).map((spec) => spec.name);
    const fullInverse = unetLdmKeys(full, 2);
    expect(fullInverse.size).toBe(full.length);
    for (const [name, ldm] of fullInverse) {
      expect(mapLdmKey(`model.diffusion_model.${ldm}`, { unetLayersPerBlock: 2, vaeLevels: 4 })?.name).toBe(name);
    }
  });
});

describe("LoRA formats on the tiny model", () => {
  it("kohya (LDM names), kohya with diffusers names and LoCon, and PEFT: every module lands on the weight it was made for", async () => {
    for (const kind of TINY_LORA_KINDS) {
      const lora = await openLora(loras[kind]);
      try {
        const { matched, unmatched } = mapLoraModules(lora, parts(), layersPerBlock());
        expect(unmatched, kind).toEqual([]);
        const expected = new Map(tinyLoraModules(kind).map((m) => [m.key, `${m.part}:${m.target}`]));
        expect(matched.length, kind).toBe(expected.size);
        for (const { module, target } of matched) expect(`${target.part}:${target.name}`, module.key).toBe(expected.get(module.key));
      } finally {
        await lora.close();
      }
    }
  });

  it("PEFT's base_model.model. prefix and diffusers' older processor / lora_linear_layer names land too", async () => {
    const peft = tinyLoraModules("peft");
    const prefixed = peft.flatMap((m) => {
      const rename = (name: string) => name.replace(/^unet\./, "base_model.model.").replace(/^text_encoder\./, "base_model.model.");
      return [{ ...m.down, name: rename(m.down.name) }, { ...m.up, name: rename(m.up.name) }];
    });
    const legacy = peft.flatMap((m) => {
      const attention = /^unet\.(.*)\.(to_q|to_k|to_v|to_out\.0)$/.exec(m.key);
      if (attention) {
        const base = `unet.${attention[1]}.processor.${attention[2].replace(".0", "")}_lora`;
        return [{ ...m.down, name: `${base}.down.weight` }, { ...m.up, name: `${base}.up.weight` }];
      }
      if (m.part === "text_encoder") return [{ ...m.down, name: `${m.key}.lora_linear_layer.down.weight` }, { ...m.up, name: `${m.key}.lora_linear_layer.up.weight` }];
      return [];
    });
    for (const [label, tensors] of [["base_model.model.", prefixed], ["processor", legacy]] as const) {
      const lora = await openLora(await loraFile(tensors));
      try {
        const { matched, unmatched } = mapLoraModules(lora, parts(), layersPerBlock());
        expect(unmatched, label).toEqual([]);
        expect(matched.length, label).toBe(tensors.length / 2);
        const targets = new Set(peft.map((m) => `${m.part}:${m.target}`));
        for (const { target } of matched) expect(targets.has(`${target.part}:${target.name}`), `${label} ${target.name}`).toBe(true);
      } finally {
        await lora.close();
      }
    }
  });

  it("a kohya file with LDM names and one with diffusers names give identical merged weights", async () => {
    const diffusersNamed = await loraFile(tinyLoraTensors("kohya-ldm", { naming: "kohya-diffusers" }));
    const [ldm, named] = await Promise.all(
      [loras["kohya-ldm"], diffusersNamed].map((file) =>
        withPlan([use(file, 0.8, 1.2)], (plan) => readAll(withLoras(model.unet, plan.unet), withLoras(model.textEncoder, plan.textEncoder))),
      ),
    );
    const base = await readAll(model.unet, model.textEncoder);
    let changed = 0;
    for (const [name, values] of ldm) {
      expect(bytesEqual(values, named.get(name) as Float32Array), name).toBe(true);
      if (!bytesEqual(values, base.get(name) as Float32Array)) changed++;
    }
    expect(changed).toBe(tinyLoraModules("kohya-ldm").length);
  });

  it("each merged weight is base + strength · alpha / rank · (up · down): Linear, 1×1 and 3×3 convolutions, a Linear pair on a 1×1 convolution", async () => {
    const checks: Array<[keyof TinyLoraPaths & string, RegExp]> = [
      ["kohya-ldm", /attn2\.to_k\.weight$/], // F16 file, alpha 2 of rank 4
      ["kohya-ldm", /attentions\.0\.proj_in\.weight$/], // 1×1 conv pair
      ["kohya-diffusers-locon", /resnets\.0\.conv1\.weight$/], // 3×3 LoCon, no alpha
      ["peft", /attentions\.0\.proj_out\.weight$/], // Linear pair [out, in] on [out, in, 1, 1]
      ["peft", /self_attn\.q_proj\.weight$/],
    ];
    for (const [kind, pattern] of checks) {
      const [strengthModel, strengthClip] = [0.7, -1.3];
      const lora = await openLora(loras[kind as (typeof TINY_LORA_KINDS)[number]]);
      try {
        const { matched } = mapLoraModules(lora, parts(), layersPerBlock());
        const found = matched.filter(({ target }) => pattern.test(target.name));
        expect(found.length, `${kind} ${pattern}`).toBeGreaterThan(0);
        const plan = await planLoras([use(lora.path, strengthModel, strengthClip)], parts(), layersPerBlock());
        try {
          for (const { module, target } of found) {
            const base = target.part === "unet" ? model.unet : model.textEncoder;
            const merged = await withLoras(base, target.part === "unet" ? plan.unet : plan.textEncoder).read(target.name);
            const original = await base.read(target.name);
            const [up, down] = [await module.up.readFloat32(), await module.down.readFloat32()];
            const rank = module.rank;
            const columns = down.length / rank;
            const scale = ((target.part === "unet" ? strengthModel : strengthClip) * (module.alpha ?? rank)) / rank;
            expect(module.alpha, kind).toBe(kind === "kohya-ldm" ? 2 : undefined);
            let worst = 0;
            for (let i = 0; i < up.length / rank; i++) {
              for (let j = 0; j < columns; j++) {
                let sum = 0;
                for (let k = 0; k < rank; k++) sum += up[i * rank + k] * down[k * columns + j];
                const expected = original[i * columns + j] + scale * sum;
                worst = Math.max(worst, Math.abs(merged[i * columns + j] - expected) / (1e-3 + Math.abs(expected)));
              }
            }
            expect(worst, `${kind} ${target.name}`).toBeLessThan(1e-5);
            expect(bytesEqual(merged, original)).toBe(false);
          }
        } finally {
          await plan.close();
        }
      } finally {
        await lora.close();
      }
    }
  });

  it("strength 0 gives the base's bytes; strength 0 on the UNet alone leaves the UNet's bytes", async () => {
    const base = await readAll(model.unet, model.textEncoder);
    const zero = await withPlan([use(loras["kohya-diffusers-locon"], 0, 0)], async (plan) => {
      expect(plan.unet).toHaveLength(0);
      expect(plan.textEncoder).toHaveLength(0);
      return readAll(withLoras(model.unet, plan.unet), withLoras(model.textEncoder, plan.textEncoder));
    });
    for (const [name, values] of base) expect(bytesEqual(zero.get(name) as Float32Array, values), name).toBe(true);

    const clipOnly = await withPlan([use(loras["kohya-ldm"], 0, 1)], (plan) => readAll(withLoras(model.unet, plan.unet), withLoras(model.textEncoder, plan.textEncoder)));
    for (const [name, values] of base) {
      if (name.startsWith("unet:")) expect(bytesEqual(clipOnly.get(name) as Float32Array, values), name).toBe(true);
    }
    expect([...base].some(([name, values]) => name.startsWith("text_encoder:") && !bytesEqual(clipOnly.get(name) as Float32Array, values))).toBe(true);
  });

  it("two LoRAs on the same weight add up", async () => {
    const name = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight";
    const read = (uses: LoraUse[]) => withPlan(uses, (plan) => withLoras(model.unet, plan.unet).read(name));
    const base = await model.unet.read(name);
    const a = await read([use(loras["kohya-ldm"], 0.5, 0)]);
    const b = await read([use(loras.peft, 0.6, 0)]);
    const both = await read([use(loras["kohya-ldm"], 0.5, 0), use(loras.peft, 0.6, 0)]);
    for (let i = 0; i < base.length; i++) expect(both[i]).toBeCloseTo(base[i] + (a[i] - base[i]) + (b[i] - base[i]), 6);
  });
});

describe("what is refused, in one line", () => {
  it("a LoRA with a key that matches nothing is refused naming it, and applied without it when ignoreUnmatched is set", async () => {
    const bogus = await loraFile([
      ...tinyLoraTensors("kohya-ldm"),
      ...pair("lora_unet_input_blocks_99_1_proj_in", [4, 32], [32, 4]),
      { name: "some_stray_tensor", dtype: "F32", shape: [2], values: [1, 2] },
    ]);
    await expect(planLoras([use(bogus, 1, 1)], parts(), layersPerBlock())).rejects.toThrow(
      /lora-\d+\.safetensors: 2 of its \d+ LoRA modules and keys match no weight of this model: lora_unet_input_blocks_99_1_proj_in \(no UNet weight of this model has that name\); some_stray_tensor .*ignore unmatched/,
    );
    await withPlan([use(bogus, 1, 1, true)], async (plan) => {
      expect(plan.unmatched.map((u) => u.key)).toEqual(["lora_unet_input_blocks_99_1_proj_in", "some_stray_tensor"]);
      expect(plan.unet.length + plan.textEncoder.length).toBe(tinyLoraModules("kohya-ldm").length);
    });
  });

  it("an SD 1.5-sized LoRA on the tiny model: shapes that do not fit are named with the reason; the list stops at 20 with a count", async () => {
    const full = await loraFile([
      ...pair("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q", [4, 320], [320, 4]),
      // A 3×3 LoCon pair on a Linear of the right width.
      ...pair("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_k", [4, 32, 3, 3], [32, 4, 1, 1]),
      ...Array.from({ length: 24 }, (_, n) => pair(`lora_unet_up_blocks_3_attentions_2_transformer_blocks_${n}_attn1_to_q`, [4, 320], [320, 4])).flat(),
    ]);
    const error = await planLoras([use(full, 1, 1)], parts(), layersPerBlock()).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(error?.name).toBe("CheckpointError");
    expect(error?.message).toMatch(/26 of its 26 LoRA modules/);
    expect(error?.message).toContain(
      "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q (its shape does not fit: the LoRA changes a [320, 320] weight (rank 4), down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight is [32, 32])",
    );
    expect(error?.message).toContain("attn1_to_k (its shape does not fit: the LoRA changes a [32, 32, 3, 3] weight (rank 4)");
    expect(error?.message).toContain("up_blocks_3_attentions_2_transformer_blocks_0_attn1_to_q (no UNet weight of this model has that name)");
    expect(error?.message).toMatch(/; and 6 more\./);
    expect(error?.message.split("\n")).toHaveLength(1);
  });

  it("a checkpoint given as a LoRA is named as such", async () => {
    await expect(openLora(tiny.singleFile)).rejects.toThrow(/single-file\.safetensors: this is a checkpoint, not a LoRA: load it with Load Checkpoint$/);
    await expect(planLoras([use(tiny.ckpt, 1, 1)], parts(), layersPerBlock())).rejects.toThrow(/is a checkpoint, not a LoRA/);
    await expect(openLora(path.join(tiny.diffusers, "unet", "diffusion_pytorch_model.safetensors"))).rejects.toThrow(/a model's weights .*not a LoRA/);
  });

  it("LoHa, LoKr and other LyCORIS kinds are refused by name", async () => {
    const loha = await loraFile(["hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b"].map((part) => ({ name: `lora_unet_x.${part}`, dtype: "F32" as const, shape: [2, 2], values: [1, 2, 3, 4] })));
    await expect(openLora(loha)).rejects.toThrow(/this is a LoHa \(LyCORIS Hadamard product\), which is not supported yet \(key lora_unet_x\.hada_w1_a\)/);
    const lokr = await loraFile([{ name: "lora_unet_x.lokr_w1", dtype: "F32", shape: [2, 2], values: [1, 2, 3, 4] }]);
    await expect(openLora(lokr)).rejects.toThrow(/LoKr .*not supported yet/);
    const tucker = await loraFile([...pair("lora_unet_x", [4, 32, 3, 3], [32, 4, 1, 1]), { name: "lora_unet_x.lora_mid.weight", dtype: "F32", shape: [4, 4, 3, 3], values: new Float32Array(144) }]);
    await expect(openLora(tucker)).rejects.toThrow(/lora_mid.*not supported yet/);
  });

  it("SDXL LoRAs are refused: two text encoders, or 2048-wide context", async () => {
    const twoEncoders = await loraFile([...pair("lora_te1_text_model_encoder_layers_0_mlp_fc1", [4, 768], [3072, 4]), ...pair("lora_te2_text_model_encoder_layers_0_mlp_fc1", [4, 1280], [5120, 4])]);
    await expect(openLora(twoEncoders)).rejects.toThrow(/this is an SDXL LoRA/);
    const wide = await loraFile(pair("lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k", [4, 2048], [640, 4]));
    await expect(openLora(wide)).rejects.toThrow(/SDXL LoRA \(module lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k reads 2048-wide text context\)/);
  });

  it("a module whose up and down ranks disagree is refused", async () => {
    const file = await loraFile(pair("lora_unet_down_blocks_0_attentions_0_proj_in", [4, 32], [32, 8]));
    await expect(openLora(file)).rejects.toThrow(/LoRA module lora_unet_down_blocks_0_attentions_0_proj_in: its up and down weights disagree on the rank \(up \[32, 8\] has 8, down \[4, 32\] has 4\)/);
    const half = await loraFile(pair("lora_unet_down_blocks_0_attentions_0_proj_in", [4, 32], [32, 4]).slice(0, 1));
    await expect(openLora(half)).rejects.toThrow(/has lora_unet_down_blocks_0_attentions_0_proj_in\.lora_down\.weight but no up weight/);
  });
});

describe("the merge's arithmetic", () => {
  it("reads a LoRA's tensors only when the weight they change is read", async () => {
    const reads: string[] = [];
    const tensor = (name: string, shape: number[], value: number): CheckpointTensor => ({
      name,
      dtype: "F32",
      shape,
      readFloat32: async () => {
        reads.push(name);
        return new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(value);
      },
    });
    const module: LoraModule = { key: "m", part: "unet", lookup: "m", rank: 2, alpha: undefined, down: tensor("down", [2, 3], 1), up: tensor("up", [2, 2], 0.5) };
    const base: ModelWeights = { shape: (name) => (name === "a" || name === "b" ? [2, 3] : undefined), read: async () => new Float32Array(6).fill(1) };
    const weights = withLoras(base, [{ name: "a", module, scale: 2 }]);
    expect(weights.shape("a")).toEqual([2, 3]);
    expect(await weights.read("b")).toEqual(new Float32Array(6).fill(1));
    expect(reads).toEqual([]);
    // 1 + 2 · (0.5 · 1 + 0.5 · 1)
    expect(await weights.read("a")).toEqual(new Float32Array(6).fill(3));
    expect(reads.sort()).toEqual(["down", "up"]);
  });

  it("the WebAssembly SIMD product equals the JavaScript loop (odd rows, ranks and widths)", () => {
    expect(loraSimdAvailable()).toBe(true);
    let seed = 7;
    const random = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32) * 2 - 1;
    for (const [out, rank, columns] of [[1, 1, 1], [3, 5, 7], [32, 4, 288], [33, 8, 81], [64, 64, 64], [7, 3, 3072]]) {
      const up = Float32Array.from({ length: out * rank }, random);
      const down = Float32Array.from({ length: rank * columns }, random);
      const start = Float32Array.from({ length: out * columns }, random);
      const simd = new Float32Array(start);
      const scalar = new Float32Array(start);
      addLoraProduct(simd, up, down, out, rank, columns, -0.75);
      addLoraProductScalar(scalar, up, down, out, rank, columns, -0.75);
      let worst = 0;
      for (let i = 0; i < start.length; i++) worst = Math.max(worst, Math.abs(simd[i] - scalar[i]));
      expect(worst, `${out}×${rank}×${columns}`).toBeLessThan(2e-6 * Math.sqrt(rank));
    }
  });
});
