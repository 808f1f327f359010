import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import sharp from "sharp";
import { beforeAll, describe, expect, it, vi } from "vitest";
import { createBuiltinRegistry } from "../nodes/index.ts";
import { runBatch } from "../server/cli/run-batch.ts";
import { main } from "../server/cli/main.ts";
import { cliDataFolders } from "../server/cli/cli-data-folders.ts";
import { createEngines } from "../server/engines/create-engines.ts";
import { ensureTinyModels } from "./fixtures/make-tiny-models.ts";

const repo = path.resolve(import.meta.dirname, "..");
let tinyModel: string;

beforeAll(async () => {
  tinyModel = (await ensureTinyModels()).fp32;
});

function collect(isTTY = false) {
  let text = "";
  return {
    stream: Object.assign(new Writable({ write(chunk: Buffer, _e: string, cb: () => void) { text += chunk; cb(); } }), { isTTY }),
    get text() {
      return text;
    },
  };
}

async function cli(args: string[], tty = false) {
  const stdout = collect();
  const stderr = collect(tty);
  const code = await main(args, { stdout: stdout.stream, stderr: stderr.stream });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

type Rgb = [number, number, number];

async function solid(file: string, rgb: Rgb, width = 32, height = 24) {
  await sharp({ create: { width, height, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } }).png().toFile(file);
}

/** A mask white in the columns from `from` to `to` (of 32), black elsewhere. */
async function stripeMask(file: string, from: number, to: number) {
  const data = Buffer.alloc(32 * 24);
  for (let y = 0; y < 24; y++) for (let x = from; x < to; x++) data[y * 32 + x] = 255;
  await sharp(data, { raw: { width: 32, height: 24, channels: 1 } }).png().toFile(file);
}

interface BatchReport {
  status: string;
  done: number;
  failed: number;
  notRun: number;
  items: Array<{ name: string; status: string; inputs: Record<string, string>; files: string[]; executed?: string[]; cached?: string[]; error?: string }>;
}

/**
 * photos/{a,b,c2,c10}.png in four colours, masks/{a,c2,c10,zz}.png each white in a different stripe, and a
 * grey background.png next to a workflow that composites each photo onto the background through its mask.
 */
async function compositeFixture() {
  const dir = await mkdtemp(path.join(os.tmpdir(), "maskflow-batch-"));
  await mkdir(path.join(dir, "photos"));
  await mkdir(path.join(dir, "masks"));
  const colours: Record<string, Rgb> = { a: [255, 0, 0], b: [0, 255, 0], c2: [0, 0, 255], c10: [255, 255, 0] };
  const stripes: Record<string, [number, number]> = { a: [0, 8], c2: [8, 16], c10: [16, 24], zz: [24, 32] };
  for (const [stem, rgb] of Object.entries(colours)) await solid(path.join(dir, "photos", `${stem}.png`), rgb);
  for (const [stem, [from, to]] of Object.entries(stripes)) await stripeMask(path.join(dir, "masks", `${stem}.png`), from, to);
  await writeFile(path.join(dir, "photos", "notes.txt"), "not a picture");
  await solid(path.join(dir, "background.png"), [128, 128, 128]);
  const workflow = {
    format: "maskflow-workflow",
    version: 1,
    nodes: [
      { id: "1", type: "LoadImage", inputs: { image: "background.png" } },
      { id: "2", type: "LoadMask", inputs: { image: "background.png", channel: "luminance" } },
      { id: "3", type: "LoadImage", inputs: { image: "background.png" } },
      { id: "4", type: "Composite", inputs: { destination: ["3", "image"], source: ["1", "image"], mask: ["2", "mask"] } },
      { id: "5", type: "SaveImage", inputs: { images: ["4", "image"], filename_prefix: "batch" } },
    ],
  };
  const file = path.join(dir, "workflow.json");
  await writeFile(file, JSON.stringify(workflow));
  return { dir, file, colours, stripes, common: ["--out", path.join(dir, "out"), "--data", path.join(dir, "data")] };
}

async function pixel(file: string, x: number, y: number): Promise<Rgb> {
  const { data, info } = await sharp(file).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const i = (y * info.width + x) * 3;
  return [data[i], data[i + 1], data[i + 2]];
}

describe("maskflow run --batch", () => {
  it("runs once per picture pair, names outputs after the picture, reports the unmatched and exits 1", async () => {
    const { dir, file, colours, stripes, common } = await compositeFixture();
    const result = await cli(["run", file, "--batch", "1.image=" + path.join(dir, "photos"), "--batch", `2.image=${path.join(dir, "masks")}`, ...common, "--json"]);
    expect(result.code, result.stderr).toBe(1);
    const report = JSON.parse(result.stdout) as BatchReport;
    expect(report).toMatchObject({ status: "error", done: 3, failed: 2, notRun: 0 });
    // Numbers sort by value: c2 before c10.
    expect(report.items.map((item) => [item.name, item.status])).toEqual([
      ["b", "unmatched"],
      ["zz", "unmatched"],
      ["a", "success"],
      ["c2", "success"],
      ["c10", "success"],
    ]);
    expect(report.items[0].error).toBe(`${path.join(dir, "photos")}/b.png has no partner in ${path.join(dir, "masks")} (no picture named b.*)`);
    expect(report.items[1].error).toMatch(/masks\/zz\.png has no partner in .*photos \(no picture named zz\.\*\)/);
    for (const item of report.items.filter((i) => i.status === "success")) {
      expect(item.files).toHaveLength(1);
      expect(path.basename(item.files[0])).toMatch(new RegExp(`^batch_${item.name}_\\d{14}_\\d{5}\\.png$`));
      // The photo shows through its own mask's stripe, the grey background elsewhere: the pairs were not mixed up.
      const [from, to] = stripes[item.name];
      expect(await pixel(item.files[0], from, 12)).toEqual(colours[item.name]);
      expect(await pixel(item.files[0], to - 1, 5)).toEqual(colours[item.name]);
      expect(await pixel(item.files[0], (to + 4) % 32, 12)).toEqual([128, 128, 128]);
    }
    // The background (node 3) does not depend on the batch: loaded for the first picture, from the cache after.
    const ran = report.items.filter((i) => i.status === "success");
    expect(ran[0].executed?.toSorted()).toEqual(["1", "2", "3", "4", "5"]);
    for (const item of ran.slice(1)) {
      expect(item.cached).toEqual(["3"]);
      expect(item.executed?.toSorted()).toEqual(["1", "2", "4", "5"]);
    }
    expect((await readdir(path.join(dir, "out"))).sort()).toHaveLength(3);
    expect(result.stderr).toMatch(/skipped in .*photos what is not a picture by its extension: notes\.txt/);
    expect(result.stderr).toMatch(/batch of 5 pictures: 3 done, 2 failed \(2 unmatched\)\n  - b: .*no partner.*\n  - zz: .*no partner/);
  });

  it("without --json: the written files on stdout, a line per picture and the summary on stderr; all matched exits 0", async () => {
    const { dir, file, common } = await compositeFixture();
    const only = path.join(dir, "only");
    await mkdir(only);
    await solid(path.join(only, "one.jpg"), [10, 20, 30]);
    await solid(path.join(only, "two.webp"), [10, 20, 30]);
    const result = await cli(["run", file, "--batch", `1.image=${only}`, "--set", "2.image=background.png", ...common]);
    expect(result.code, result.stderr).toBe(0);
    const written = result.stdout.trim().split("\n");
    expect(written.map((f) => path.basename(f).replace(/_\d{14}_\d{5}/, ""))).toEqual(["batch_one.png", "batch_two.png"]);
    expect(result.stderr).toMatch(/^\[1\/2\] one: done in \d+\.\d s → batch_one_\d+_00001\.png\n\[2\/2\] two: done in \d+\.\d s → batch_two_\d+_00002\.png\nmaskflow run: batch of 2 pictures: 2 done, 0 failed\n$/);
  });

  it("a picture that fails is reported with its node and the batch goes on; exit 1", async () => {
    const { dir, file, common } = await compositeFixture();
    await writeFile(path.join(dir, "photos", "broken.png"), "not a picture at all");
    await stripeMask(path.join(dir, "masks", "broken.png"), 0, 4);
    const result = await cli(["run", file, "--batch", `1.image=${path.join(dir, "photos")}`, "--batch", `2.image=${path.join(dir, "masks")}`, ...common]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/\] broken: failed at node 1 \(LoadImage\): .*broken\.png/);
    expect(result.stderr).toMatch(/batch of 6 pictures: 3 done, 3 failed \(2 unmatched\)/);
    expect(result.stdout.trim().split("\n")).toHaveLength(3);
  });

  it("bad --batch values are refused before anything runs (exit 2), naming the inputs that take a picture", async () => {
    const { dir, file, common } = await compositeFixture();
    const photos = path.join(dir, "photos");
    const cases: Array<[string[], RegExp]> = [
      [["--batch", "1.image"], /--batch "1\.image" must look like NODE\.INPUT=FOLDER/],
      [["--batch", `image=${photos}`], /--batch "image" must name a node input as NODE\.INPUT/],
      [["--batch", `9.image=${photos}`], /--batch 9\.image: no node "9"; node ids: 1, 2, 3, 4, 5/],
      [["--batch", `5.filename_prefix=${photos}`], /node 5 \(SaveImage\) has no picture input "filename_prefix"; inputs that take a picture here: 1\.image \(LoadImage\), 2\.image \(LoadMask\), 3\.image \(LoadImage\)/],
      [["--batch", `1.image=${photos}`, "--batch", `1.image=${photos}`], /1\.image is given twice/],
      [["--batch", `1.image=${path.join(dir, "nowhere")}`], /--batch 1\.image: .*nowhere does not exist/],
      [["--batch", `1.image=${file}`], /--batch 1\.image: .*workflow\.json is a file, not a folder/],
      [["--batch", `1.image=${path.join(dir, "out-empty")}`, "--set", "4.x=999999"], /does not exist/],
    ];
    await mkdir(path.join(dir, "empty"));
    cases.push([["--batch", `1.image=${path.join(dir, "empty")}`], /no pictures in .*empty \(a picture ends in \.png/]);
    // A problem of the workflow itself (not of a batched input) is found once, before any picture runs.
    cases.push([["--batch", `1.image=${photos}`, "--set", "4.x=-99999999"], /node 4, input "x"/]);
    for (const [args, message] of cases) {
      const result = await cli(["run", file, ...args, ...common]);
      expect(result.code, args.join(" ")).toBe(2);
      expect(result.stderr).toMatch(message);
      expect(result.stdout).toBe("");
    }
  });

  it("on a terminal: one progress bar for the batch, with each picture's line above it", async () => {
    const { dir, file, common } = await compositeFixture();
    const result = await cli(["run", file, "--batch", `1.image=${path.join(dir, "photos")}`, "--set", "2.image=background.png", ...common], true);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/batch \[=+-*\] 4\/4/);
    // Each picture's line, in order, before the final bar.
    const lines = [...result.stderr.matchAll(/\[(\d)\/4\] (\w+): done in/g)].map((m) => `${m[1]} ${m[2]}`);
    expect(lines).toEqual(["1 a", "2 b", "3 c2", "4 c10"]);
    expect(result.stderr.match(/batch of 4 pictures: 4 done, 0 failed/g)).toHaveLength(1);
  });
});

describe("a batch through the model", () => {
  it("inpaints every picture with the model loaded once and the prompt encoded once", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "maskflow-batch-model-"));
    await mkdir(path.join(dir, "photos"));
    await mkdir(path.join(dir, "masks"));
    const count = 3;
    for (let i = 1; i <= count; i++) {
      await solid(path.join(dir, "photos", `p${i}.png`), [40 * i, 60, 200 - 40 * i], 64, 64);
      await sharp({ create: { width: 64, height: 64, channels: 3, background: "#000" } })
        .composite([{ input: { create: { width: 16, height: 16, channels: 3, background: "#fff" } }, left: 8 * i, top: 16 }])
        .png()
        .toFile(path.join(dir, "masks", `p${i}.png`));
    }
    const registry = createBuiltinRegistry();
    const workflowFile = path.join(repo, "workflows/inpaint.json");
    const folders = cliDataFolders({ workflowFile, data: path.join(dir, "data"), out: path.join(dir, "out"), temp: path.join(dir, "temp") });
    const workflow = JSON.parse(await (await import("node:fs/promises")).readFile(workflowFile, "utf8"));
    Object.assign(workflow.nodes.find((n: { id: string }) => n.id === "4").inputs, { steps: 2 });
    Object.assign(workflow.nodes.find((n: { id: string }) => n.id === "5").inputs, { width: 64, height: 64 });
    const engines = await createEngines({ modelDir: tinyModel });
    // The real model, loaded the way the batch will find it; its sessions are counted as the pictures run.
    const model = await engines.local.model();
    const textEncoderRuns = vi.spyOn(model.textEncoder, "run");
    const unetRuns = vi.spyOn(model.unet, "run");
    const load = vi.spyOn(engines.local, "model");
    const stdout = collect();
    const stderr = collect();
    const code = await runBatch({
      io: { stdout: stdout.stream, stderr: stderr.stream },
      name: workflowFile,
      workflow,
      specs: [`1.image=${path.join(dir, "photos")}`, `2.image=${path.join(dir, "masks")}`],
      json: true,
      folders,
      registry,
      createEngines: async () => engines,
      signal: new AbortController().signal,
    });
    expect(code, stderr.text).toBe(0);
    const report = JSON.parse(stdout.text) as BatchReport;
    expect(report.items.map((item) => item.status)).toEqual(Array(count).fill("success"));
    expect(report.items.every((item) => typeof (item as { seconds?: number }).seconds === "number")).toBe(true);
    // Prompt (3) and Scheduler (4) ran for the first picture only; Inpaint (5) ran for each.
    expect(report.items[0].executed?.toSorted()).toEqual(["1", "2", "3", "4", "5", "6"]);
    for (const item of report.items.slice(1)) {
      expect(item.cached).toEqual(["3", "4"]);
      expect(item.executed?.toSorted()).toEqual(["1", "2", "5", "6"]);
    }
    // Positive and negative text, each encoded once for all the pictures; two steps × two guidance calls per picture.
    expect(textEncoderRuns).toHaveBeenCalledTimes(2);
    expect(unetRuns.mock.calls.length).toBe(count * 2 * (model.info.unetBatchable ? 1 : 2));
    expect(new Set(load.mock.results.map((r) => r.value)).size).toBe(1);
    const outputs = report.items.map((item) => item.files[0]);
    // Different pictures give different results (each item really read its own files).
    const bytes = await Promise.all(outputs.map((f) => sharp(f).raw().toBuffer()));
    expect(Buffer.compare(bytes[0], bytes[1])).not.toBe(0);
  });
});

/** photos/ and masks/ with the same names, 64² each: a white square to repaint on a coloured picture. */
async function photosAndMasks(dir: string, names: string[]) {
  await mkdir(path.join(dir, "photos"));
  await mkdir(path.join(dir, "masks"));
  for (const [i, name] of names.entries()) {
    await solid(path.join(dir, "photos", `${name}.jpg`), [40 * i, 90, 160], 64, 64);
    await sharp({ create: { width: 64, height: 64, channels: 3, background: "#000" } })
      .composite([{ input: { create: { width: 24, height: 24, channels: 3, background: "#fff" } }, left: 20, top: 20 }])
      .png()
      .toFile(path.join(dir, "masks", `${name}.png`));
  }
}

describe("the README's batch example", () => {
  it("runs as written (on the tiny model, at 64²): one result per photo, named after it", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "maskflow-batch-readme-"));
    await photosAndMasks(dir, ["cat", "yak"]);
    const cwd = process.cwd();
    process.chdir(dir);
    try {
      const result = await cli([
        "run", path.join(repo, "workflows/inpaint.json"), "--batch", "1.image=photos", "--batch", "2.image=masks", "--out", "results",
        "--set", "3.positive=a small green potted plant", "--set", "4.steps=3",
        "--model", tinyModel, "--data", path.join(dir, "data"), "--set", "5.width=64", "--set", "5.height=64",
      ]);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout.trim().split("\n").map((file) => path.relative(dir, file).replace(/_\d{14}_/, "_T_"))).toEqual([
        path.join("results", "inpaint_cat_T_00001.png"),
        path.join("results", "inpaint_yak_T_00002.png"),
      ]);
      expect(result.stderr).toMatch(/batch of 2 pictures: 2 done, 0 failed\n$/);
    } finally {
      process.chdir(cwd);
    }
  });

  it("Ctrl+C stops the batch: the running picture within a step, the rest not run, exit 130", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "maskflow-batch-sigint-"));
    await photosAndMasks(dir, ["p1", "p2", "p3", "p4"]);
    const child = spawn(process.execPath, [
      path.join(repo, "bin/maskflow.js"), "run", path.join(repo, "workflows/inpaint.json"),
      "--batch", `1.image=${path.join(dir, "photos")}`, "--batch", `2.image=${path.join(dir, "masks")}`, "--out", path.join(dir, "out"),
      "--model", tinyModel, "--data", path.join(dir, "data"), "--set", "4.steps=150", "--set", "5.width=256", "--set", "5.height=256",
    ], { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    const exit = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk;
      // Once the first picture is done: the second is then starting or under way (its progress lines come at most once
      // a second, so on a fast machine none may show before it ends, and waiting for one let all four finish).
      if (/\[1\/4\] p1: done/.test(stderr) && !child.killed) child.kill("SIGINT");
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    const code = await exit;
    clearTimeout(timer);
    expect(code, stderr).toBe(130);
    expect(stderr).toMatch(/\[1\/4\] p1: done/);
    // The picture running when the signal came stops there (none, if it came between two); the ones after it do not start.
    expect([...stderr.matchAll(/\] p\d: interrupted\n/g)].length).toBeLessThanOrEqual(1);
    const done = [...stderr.matchAll(/\] p\d: done/g)].length;
    expect(done).toBeLessThan(4);
    expect(stderr).toMatch(new RegExp(`batch of 4 pictures: ${done} done, 0 failed, ${4 - done} not run \\(interrupted\\)\\n$`));
  }, 90_000);
});
