/**
 * The diffusers / torch goldens committed in test/fixtures/diffusers-parity (made by test/parity/*.py),
 * read and replayed on Maskflow's own code, with the distances the tests assert and `npm run bench parity`
 * prints. Tensors are stored as base64 of little-endian float32.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { z } from "zod";
import { createScheduler, timestepsForStrength } from "../../server/engines/onnx/schedulers/index.ts";
import { TorchGenerator } from "../../server/engines/onnx/torch-generator.ts";

export const PARITY_FIXTURES = path.resolve(import.meta.dirname, "../fixtures/diffusers-parity");

const f32 = Math.fround;

export function float32FromBase64(text: string): Float32Array {
  const bytes = Buffer.from(text, "base64");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(bytes.byteLength / 4);
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true);
  return out;
}

/** How many float32 values lie between a and b (0: the same value; +0 and -0 count as one). */
export function float32UlpDistance(a: number, b: number): number {
  const ordered = (x: number): number => {
    const bits = new Int32Array(new Float32Array([x]).buffer)[0];
    return bits < 0 ? -(bits & 0x7fffffff) : bits;
  };
  return Math.abs(ordered(a) - ordered(b));
}

export interface Distance {
  /** Values equal to the last bit. */
  readonly exact: number;
  readonly count: number;
  readonly maxAbs: number;
  readonly maxUlp: number;
  /** maxAbs over the largest golden magnitude: float32 rounding alone is about 6e-8 per operation. */
  readonly relative: number;
}

export function distance(ours: ArrayLike<number>, theirs: ArrayLike<number>): Distance {
  if (ours.length !== theirs.length) throw new Error(`length ${ours.length} ≠ golden length ${theirs.length}`);
  let exact = 0;
  let maxAbs = 0;
  let maxUlp = 0;
  let scale = 0;
  for (let i = 0; i < ours.length; i++) {
    scale = Math.max(scale, Math.abs(theirs[i]));
    if (Object.is(ours[i], theirs[i]) || ours[i] === theirs[i]) exact++;
    maxAbs = Math.max(maxAbs, Math.abs(ours[i] - theirs[i]));
    maxUlp = Math.max(maxUlp, float32UlpDistance(ours[i], theirs[i]));
  }
  return { exact, count: ours.length, maxAbs, maxUlp, relative: scale === 0 ? maxAbs : maxAbs / scale };
}

// ---- torch.randn

const randnGoldens = z.object({
  torch: z.string(),
  kernel: z.enum(["avx2", "default"]),
  cases: z.array(z.object({ kind: z.string(), seed: z.string(), draws: z.array(z.object({ shape: z.array(z.number().int()), values: z.string() })) })),
});
export type RandnGoldens = z.infer<typeof randnGoldens>;

export function loadRandnGoldens(kernel: "avx2" | "default"): RandnGoldens {
  return randnGoldens.parse(JSON.parse(readFileSync(path.join(PARITY_FIXTURES, `torch-randn-${kernel}.json`), "utf8")));
}

/** Every draw of every case replayed on TorchGenerator with that CPU kernel. */
export function replayRandn(goldens: RandnGoldens): Array<{ label: string; distance: Distance }> {
  const out: Array<{ label: string; distance: Distance }> = [];
  for (const c of goldens.cases) {
    const generator = new TorchGenerator(BigInt(c.seed), { cpuKernel: goldens.kernel });
    for (const draw of c.draws) {
      const count = draw.shape.reduce((a, b) => a * b, 1);
      out.push({ label: `${c.kind} seed ${c.seed} randn(${draw.shape.join(", ")})`, distance: distance(generator.randn(count), float32FromBase64(draw.values)) });
    }
  }
  return out;
}

// ---- schedulers

const schedulerGoldens = z.object({
  diffusers: z.string(),
  torch: z.string(),
  config: z.record(z.string(), z.unknown()),
  shape: z.array(z.number().int()),
  noise_seed: z.number().int(),
  base_noise: z.string(),
  image_latents: z.string(),
  runs: z.array(
    z.object({
      name: z.string(),
      /** Config keys this run changes (lcm-scheduler.json). */
      overrides: z.record(z.string(), z.unknown()).optional(),
      steps: z.number().int(),
      strength: z.number(),
      timesteps: z.array(z.number()),
      sigmas: z.array(z.number()).nullable(),
      init_noise_sigma: z.number(),
      run_timesteps: z.array(z.number()),
      start: z.string(),
      trajectory: z.array(z.string()),
    }),
  ),
});
export type SchedulerGoldens = z.infer<typeof schedulerGoldens>;
export type SchedulerGoldenRun = SchedulerGoldens["runs"][number];

/** schedulers.json (the eleven) or lcm-scheduler.json (test/parity/lcm_goldens.py). */
export function loadSchedulerGoldens(file = "schedulers.json"): SchedulerGoldens {
  return schedulerGoldens.parse(JSON.parse(readFileSync(path.join(PARITY_FIXTURES, file), "utf8")));
}

/** The fake denoiser of scheduler_goldens.py: 0.3·x·cos(t/100) + 0.05·sin(3x) in double, rounded to float32. */
function fakeDenoiser(x: Float32Array, t: number): Float32Array {
  const c = Math.cos(f32(t) / 100);
  return x.map((v) => f32(0.3 * v * c + 0.05 * Math.sin(3 * v)));
}

export interface SchedulerReplay {
  readonly timesteps: Distance;
  readonly sigmas: Distance | null;
  readonly initNoiseSigma: { ours: number; theirs: number };
  readonly runTimesteps: Distance;
  readonly start: Distance;
  /** One per model call; shorter than the golden's when a step threw. */
  readonly steps: Distance[];
  readonly final: Distance | null;
  readonly error?: string;
}

/** One golden run driven through Maskflow's scheduler of that name, noise from TorchGenerator(noise_seed). */
export function replaySchedulerRun(goldens: SchedulerGoldens, run: SchedulerGoldenRun): SchedulerReplay {
  const scheduler = createScheduler(run.name, { ...goldens.config, ...run.overrides });
  scheduler.setTimesteps(run.steps);
  const ownSigmas = (scheduler as { sigmas?: Float32Array }).sigmas;
  const timestepsDistance = distance(scheduler.timesteps, run.timesteps);
  const sigmas = run.sigmas && ownSigmas ? distance(ownSigmas, run.sigmas) : null;
  const initNoiseSigma = { ours: scheduler.initNoiseSigma, theirs: run.init_noise_sigma };
  const { timesteps } = timestepsForStrength(scheduler, run.steps, run.strength);
  const runTimesteps = distance(timesteps, run.run_timesteps);
  const noise = new TorchGenerator(BigInt(goldens.noise_seed));
  const baseNoise = float32FromBase64(goldens.base_noise);
  let latents =
    run.strength === 1
      ? baseNoise.map((v) => v * scheduler.initNoiseSigma)
      : scheduler.addNoise(float32FromBase64(goldens.image_latents), baseNoise, timesteps[0]);
  const start = distance(latents, float32FromBase64(run.start));
  const steps: Distance[] = [];
  try {
    for (let i = 0; i < timesteps.length && i < run.trajectory.length; i++) {
      const t = timesteps[i];
      latents = scheduler.step(fakeDenoiser(scheduler.scaleModelInput(latents, t), t), t, latents, noise);
      steps.push(distance(latents, float32FromBase64(run.trajectory[i])));
    }
  } catch (error) {
    return { timesteps: timestepsDistance, sigmas, initNoiseSigma, runTimesteps, start, steps, final: null, error: String(error) };
  }
  const final = steps.length === run.trajectory.length ? steps[steps.length - 1] : null;
  return { timesteps: timestepsDistance, sigmas, initNoiseSigma, runTimesteps, start, steps, final };
}
