/**
 * `bench vae-tiling --model DIR --size PX --part encode|decode --tiling on|off [--json]`: one VAE encode or
 * decode of a size × size picture, whole or in tiles, with the process's peak RSS. DIR needs only
 * vae_encoder/ and vae_decoder/ (`make_real_size_model.py --parts vae_encoder,vae_decoder`). Peak RSS is a
 * high-water mark, so each setting runs in its own process: one invocation measures one setting.
 */
import { readFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { DEFAULT_SESSION_TUNING, OnnxSession } from "../server/engines/onnx/onnx-session.ts";
import { decodeLatents, encodePixels } from "../server/engines/onnx/vae-codec.ts";
import { RssSampler } from "./rss-sampler.ts";

interface VaeBenchArgs {
  readonly model: string;
  readonly size: number;
  readonly part: "encode" | "decode";
  readonly tiled: boolean;
}

function parseArgs(argv: readonly string[]): VaeBenchArgs | undefined {
  const value = (flag: string): string | undefined => {
    const at = argv.indexOf(flag);
    if (at < 0) return undefined;
    const next = argv[at + 1];
    if (next === undefined || next.startsWith("--")) throw new Error(`vae-tiling: ${flag} needs a value`);
    return next;
  };
  const model = value("--model");
  if (model === undefined) return undefined;
  const sizeText = value("--size") ?? "1024";
  const size = Number(sizeText);
  if (!Number.isInteger(size) || size < 64 || size > 4096 || size % 8 !== 0) {
    throw new Error(`vae-tiling: --size must be a multiple of 8 from 64 to 4096; got "${sizeText}"`);
  }
  const part = value("--part") ?? "decode";
  if (part !== "encode" && part !== "decode") throw new Error(`vae-tiling: --part must be encode or decode; got "${part}"`);
  const tiling = value("--tiling") ?? "on";
  if (tiling !== "on" && tiling !== "off") throw new Error(`vae-tiling: --tiling must be on or off; got "${tiling}"`);
  return { model: path.resolve(model), size, part, tiled: tiling === "on" };
}

/** What sd-model.ts reads from the VAE's config.json: the scale factor and the tile (its sample_size). */
async function vaeGeometry(dir: string, part: "encode" | "decode"): Promise<{ vaeScaleFactor: number; vaeTileSize: number }> {
  const config = JSON.parse(await readFile(path.join(dir, part === "encode" ? "vae_encoder" : "vae_decoder", "config.json"), "utf8")) as {
    block_out_channels?: unknown[];
    sample_size?: number;
  };
  return { vaeScaleFactor: 2 ** ((config.block_out_channels?.length ?? 4) - 1), vaeTileSize: config.sample_size ?? 512 };
}

const peakRss = () => process.resourceUsage().maxRSS * 1024;

export async function benchVaeTiling(argv: readonly string[] = process.argv.slice(2)): Promise<Record<string, number | string>> {
  const args = parseArgs(argv);
  if (!args) return { "vae-tiling": "skipped: give --model DIR (a folder with vae_encoder/ and vae_decoder/)" };
  const { model: dir, size, part, tiled } = args;
  const loadAverage = os.loadavg();
  const rssBefore = process.memoryUsage.rss();
  const sampler = new RssSampler(["load", "run"] as const);
  const file = path.join(dir, part === "encode" ? "vae_encoder" : "vae_decoder", "model.onnx");
  sampler.enter("load");
  // The CPU defaults Maskflow uses (no arena), as the pipeline opens the VAE halves.
  const session = await OnnxSession.create(file, file, { device: "cpu", threads: os.availableParallelism(), tuning: DEFAULT_SESSION_TUNING });
  try {
    const loadedRss = process.memoryUsage.rss();
    const geometry = await vaeGeometry(dir, part);
    const latentSide = size / geometry.vaeScaleFactor;
    sampler.enter("run");
    const started = performance.now();
    // Each session run (one per tile) is reported on stderr as it ends, so a run stopped early still says how far it got.
    let runs = 0;
    const counted: Pick<OnnxSession, "run"> = {
      run: async (feeds, outputNames) => {
        const output = await session.run(feeds, outputNames);
        const dims = Object.values(feeds)[0].dims.join("×");
        process.stderr.write(`vae-tiling: run ${++runs} (${dims}) done at ${((performance.now() - started) / 1000).toFixed(1)} s, peak RSS ${(peakRss() / 1e9).toFixed(2)} GB\n`);
        return output;
      },
    };
    if (part === "encode") {
      const pixels = Float32Array.from({ length: 3 * size * size }, (_, i) => Math.sin(i * 0.001));
      const outputName = session.outputs.has("latent_parameters") ? "latent_parameters" : "latent_sample";
      await encodePixels({ info: { ...geometry, vaeEncoderOutput: outputName }, vaeEncoder: counted }, pixels, size, size, tiled);
    } else {
      const latents = Float32Array.from({ length: 4 * latentSide * latentSide }, (_, i) => Math.cos(i * 0.01));
      await decodeLatents({ info: geometry, vaeDecoder: counted }, latents, latentSide, latentSide, tiled);
    }
    const runSeconds = (performance.now() - started) / 1000;
    const peaks = sampler.peaks();
    return {
      "vae-tiling": `${part} ${size}x${size}, ${tiled ? `tiles of ${geometry.vaeTileSize} px` : "whole"}, ${file}`,
      loadAverage: loadAverage.map((v) => v.toFixed(2)).join(" "),
      runSeconds,
      sessionRuns: runs,
      rssBeforeBytes: rssBefore,
      loadedRssBytes: loadedRss,
      sampledPeakRssDuringRunBytes: peaks.run,
      peakRssBytes: peakRss(),
    };
  } finally {
    await sampler.stop();
    await session.release();
  }
}
