/**
 * `npm run bench`: the speed targets of the project, measured on this machine and printed as a table
 * (and as JSON with --json). Targets are checked here, never in timed tests.
 */
import { benchAbuse } from "./abuse-bench.ts";
import { benchBatch } from "./batch-bench.ts";
import { benchCheckpointBuild } from "./checkpoint-build.ts";
import { benchCropStitch } from "./crop-stitch-bench.ts";
import { benchExecutor } from "./executor-bench.ts";
import { benchFill } from "./fill-bench.ts";
import { benchHistory } from "./history-bench.ts";
import { benchHelperModels } from "./helper-models-bench.ts";
import { benchParity } from "./parity-bench.ts";
import { benchPipeline } from "./pipeline-bench.ts";
import { benchQueue } from "./queue-bench.ts";
import { benchRealSize } from "./real-size-bench.ts";
import { benchResponsiveness } from "./responsiveness-bench.ts";
import { benchVaeTiling } from "./vae-tiling-bench.ts";

const sections: Array<[string, () => Promise<Record<string, number | string>>]> = [
  ["executor", () => benchExecutor()],
  ["pipeline", () => benchPipeline()],
  ["crop-stitch", () => benchCropStitch()],
  ["queue", () => benchQueue()],
  ["fill", () => benchFill()],
  ["helper-models", () => benchHelperModels()],
  ["responsiveness", () => benchResponsiveness()],
  ["history", () => benchHistory()],
  ["parity", () => benchParity()],
  ["real-size", () => benchRealSize()],
  ["vae-tiling", () => benchVaeTiling()],
  ["abuse", () => benchAbuse()],
  ["batch", () => benchBatch()],
  ["checkpoint-build", () => benchCheckpointBuild()],
];

const only = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const results: Record<string, number | string> = {};
for (const [name, run] of sections) {
  if (only.length && !only.includes(name)) continue;
  process.stderr.write(`bench: ${name}…\n`);
  Object.assign(results, await run());
}
if (process.argv.includes("--json")) {
  console.log(JSON.stringify(results, null, 2));
} else {
  const width = Math.max(...Object.keys(results).map((k) => k.length));
  for (const [key, value] of Object.entries(results)) {
    console.log(`${key.padEnd(width)}  ${typeof value === "number" ? value.toFixed(value < 10 ? 3 : 1) : value}`);
  }
}
