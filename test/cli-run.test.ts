import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { Writable } from "node:stream";
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { readWorkflowFromPng } from "../nodes/image/png-workflow-chunk.ts";
import { main } from "../server/cli/main.ts";

const repo = path.resolve(import.meta.dirname, "..");

function collect() {
  let text = "";
  return {
    stream: Object.assign(new Writable({ write(chunk: Buffer, _e: string, cb: () => void) { text += chunk; cb(); } }), { isTTY: false }),
    get text() {
      return text;
    },
  };
}

async function cli(args: string[]) {
  const stdout = collect();
  const stderr = collect();
  const code = await main(args, { stdout: stdout.stream, stderr: stderr.stream });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

/** A 64×48 picture: left half red, right half blue, with a transparent 16×16 hole at (8, 8). */
async function writeFixture(dir: string) {
  const width = 64;
  const height = 48;
  const data = Buffer.alloc(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 4;
      data[i] = x < 32 ? 255 : 0;
      data[i + 2] = x < 32 ? 0 : 255;
      data[i + 3] = x >= 8 && x < 24 && y >= 8 && y < 24 ? 0 : 255;
    }
  }
  await sharp(data, { raw: { width, height, channels: 4 } }).png().toFile(path.join(dir, "picture.png"));
  const workflow = {
    format: "maskflow-workflow",
    version: 1,
    nodes: [
      { id: "1", type: "LoadImage", inputs: { image: "picture.png" } },
      { id: "2", type: "CropImage", inputs: { image: ["1", "image"], x: 16, y: 0, width: 32, height: 16 } },
      { id: "3", type: "ResizeImage", inputs: { image: ["2", "image"], width: 64, height: 32, kernel: "nearest" } },
      { id: "4", type: "SaveImage", inputs: { images: ["3", "image"], filename_prefix: "cli" } },
    ],
  };
  const file = path.join(dir, "workflow.json");
  await writeFile(file, JSON.stringify(workflow));
  return { file, workflow };
}

describe("maskflow run", () => {
  it("runs a workflow of image nodes headless and writes a PNG whose pixels and workflow are right", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "maskflow-cli-"));
    const { file, workflow } = await writeFixture(dir);
    const out = path.join(dir, "out");
    const result = await cli(["run", file, "--out", out, "--data", path.join(dir, "data")]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    const written = result.stdout.trim().split("\n");
    expect(written).toHaveLength(1);
    expect(path.dirname(written[0])).toBe(out);
    const png = await readFile(written[0]);
    const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height, info.channels]).toEqual([64, 32, 3]);
    // Crop x 16..48 straddles the red/blue border at 32; nearest ×2 puts it at 32 again.
    expect([...data.subarray(0, 3)]).toEqual([255, 0, 0]);
    expect([...data.subarray((31 * 64 + 63) * 3, (31 * 64 + 63) * 3 + 3)]).toEqual([0, 0, 255]);
    expect(readWorkflowFromPng(png)).toEqual(workflow);

    // The PNG carries its workflow, so it runs as the workflow itself (its pictures are found next to the JSON's).
    await writeFile(path.join(out, "picture.png"), await readFile(path.join(dir, "picture.png")));
    const again = await cli(["run", written[0], "--out", path.join(dir, "again"), "--data", path.join(dir, "data")]);
    expect(again.code, again.stderr).toBe(0);
    const rerun = await sharp(await readFile(again.stdout.trim())).raw().toBuffer();
    expect(Buffer.compare(rerun, data)).toBe(0);
    await expect(cli(["run", path.join(dir, "picture.png")])).resolves.toMatchObject({ code: 2, stderr: expect.stringMatching(/PNG without a Maskflow workflow/) });
  });

  it("applies --set overrides and reports a node's error with a non-zero exit", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "maskflow-cli-"));
    const { file } = await writeFixture(dir);
    const common = ["--out", path.join(dir, "out"), "--data", path.join(dir, "data")];
    const resized = await cli(["run", file, ...common, "--set", "3.width=8", "--set", "3.height=4"]);
    expect(resized.code).toBe(0);
    expect((await sharp(resized.stdout.trim()).metadata()).width).toBe(8);

    // A missing picture is found before anything runs: exit 2, with the node, the input and where it was looked for.
    const missing = await cli(["run", file, ...common, "--set", "1.image=missing.png"]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/node 1, input "image": names "missing\.png", which is not a file in any of /);
    // A file that is there but is no picture fails when the node runs: exit 1, with the node's id and type.
    await writeFile(path.join(dir, "notes.png"), "not a picture");
    const failing = await cli(["run", file, ...common, "--set", "1.image=notes.png"]);
    expect(failing.code).toBe(1);
    expect(failing.stderr).toMatch(/node 1 \(LoadImage\).*notes\.png/);

    const invalid = await cli(["run", file, ...common, "--set", "3.kernel=blurry"]);
    expect(invalid.code).toBe(2);
    expect(invalid.stderr).toMatch(/node 3, input "kernel".*"nearest"/);

    const unknownNode = await cli(["run", file, ...common, "--set", "9.width=8"]);
    expect(unknownNode.code).toBe(2);
    expect(unknownNode.stderr).toMatch(/no node "9"/);
  });

  it("validate lists every problem and exits 1", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "maskflow-cli-"));
    const { file, workflow } = await writeFixture(dir);
    expect((await cli(["validate", file])).code).toBe(0);
    workflow.nodes[1].inputs = { image: ["9", "image"], x: -1 } as never;
    await writeFile(file, JSON.stringify(workflow));
    const result = await cli(["validate", file]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/node 2, input "image": links to node "9"/);
    expect(result.stderr).toMatch(/node 2, input "x"/);
  });

  it("a fresh --out: the first saved file is …_00001.png, previews neither take numbers nor stay, nothing goes to the data folder", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "maskflow-cli-"));
    const { file, workflow } = await writeFixture(dir);
    // A PreviewImage that runs before SaveImage: it writes first, into the temp folder.
    workflow.nodes.splice(1, 0, { id: "5", type: "PreviewImage", inputs: { images: ["1", "image"] } } as never);
    await writeFile(file, JSON.stringify(workflow));
    const out = path.join(dir, "out");
    const data = path.join(dir, "data");
    const result = await cli(["run", file, "--out", out, "--data", data]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    const saved = await readdir(out);
    expect(saved).toEqual([expect.stringMatching(/^cli_\d{14}_00001\.png$/)]);
    expect(result.stdout).toBe(path.join(out, saved[0]) + "\n");
    expect(existsSync(data)).toBe(false);

    // The next run into the same folder adds its file; the first stays.
    const again = await cli(["run", file, "--out", out, "--data", data]);
    expect(again.code, again.stderr).toBe(0);
    const both = await readdir(out);
    expect(both).toHaveLength(2);
    expect(both).toContain(saved[0]);
  });

  it("a run that fails leaves no --out folder it made; a folder that was there stays", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "maskflow-cli-"));
    const { file, workflow } = await writeFixture(dir);
    await writeFile(path.join(dir, "notes.png"), "not a picture");
    // The preview is written (into the run's temp folder inside --out) before node 6 fails.
    workflow.nodes.splice(1, 0, { id: "5", type: "PreviewImage", inputs: { images: ["1", "image"] } } as never);
    workflow.nodes.push({ id: "6", type: "LoadImage", inputs: { image: "notes.png" } } as never);
    workflow.nodes.find((n) => n.id === "4")!.inputs.images = ["6", "image"] as never;
    await writeFile(file, JSON.stringify(workflow));
    const data = path.join(dir, "data");

    const out = path.join(dir, "out");
    const failed = await cli(["run", file, "--out", out, "--data", data]);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/failed at node 6 \(LoadImage\)/);
    expect(existsSync(out)).toBe(false);
    expect(existsSync(data)).toBe(false);

    const kept = path.join(dir, "kept");
    await mkdir(kept);
    expect((await cli(["run", file, "--out", kept, "--data", data])).code).toBe(1);
    expect(await readdir(kept)).toEqual([]);
  });

  it("an unquoted --set value with spaces: the words the shell split off and the quoting that works, exit 2", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "maskflow-cli-"));
    const { file } = await writeFixture(dir);
    const line = `maskflow run: --set 3.positive=a is followed by "red", "chair", which the shell split off because the value was not quoted; quote it as one word: --set '3.positive=a red chair'\n`;
    for (const args of [
      ["run", file, "--set", "3.positive=a", "red", "chair"],
      ["run", "--set", "3.positive=a", "red", "chair", file],
    ]) {
      const result = await cli(args);
      expect(result.code).toBe(2);
      expect(result.stderr).toBe(line);
    }
    const quote = await cli(["run", file, "--set", "3.positive=it's", "red"]);
    expect(quote.stderr).toContain(`--set '3.positive=it'\\''s red'`);
    const two = await cli(["run", file, "other.json"]);
    expect(two.code).toBe(2);
    expect(two.stderr).toMatch(/^maskflow run: one workflow file at a time; got 2: .*workflow\.json, other\.json\nusage: maskflow run/);
  });

  it("the installed bin runs as a real process", async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [path.join(repo, "bin/maskflow.js"), "--help"], { timeout: 30_000 });
    expect(stdout).toMatch(/maskflow run WORKFLOW\.json/);
  });
});
