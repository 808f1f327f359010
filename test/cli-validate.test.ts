import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import sharp from "sharp";
import { afterEach, describe, expect, it } from "vitest";
import { main } from "../server/cli/main.ts";
import { api, startTestServer, type TestServer } from "./helpers/test-server.ts";

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

type WorkflowJson = { nodes: Array<{ id: string; type: string; inputs: Record<string, unknown> }> };

/** The shipped default graph, to be spoiled one input at a time. */
async function shippedInpaint(): Promise<WorkflowJson> {
  return JSON.parse(await readFile(path.join(repo, "workflows/inpaint.json"), "utf8")) as WorkflowJson;
}

function node(workflow: WorkflowJson, id: string) {
  return workflow.nodes.find((n) => n.id === id)!;
}

/** Nothing a user cannot read: no control characters but line breaks, no replacement characters from decoded binary. */
const UNREADABLE = /[\u0000-\u0009\u000b-\u001f\u007f\ufffd]/;

describe("maskflow validate runs every check that needs no model", () => {
  it("finds a missing picture, a width that is not a multiple of 8 and steps × strength below one step, with node, input and message", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "maskflow-validate-"));
    const workflow = await shippedInpaint();
    node(workflow, "1").inputs.image = "missing.png";
    // The mask is next to the workflow: found there, as run finds it.
    await writeFile(path.join(dir, "mask.png"), await readFile(path.join(repo, "workflows/examples/room-mask.png")));
    node(workflow, "2").inputs.image = "mask.png";
    Object.assign(node(workflow, "4").inputs, { steps: 3, strength: 0.2 });
    node(workflow, "5").inputs.width = 513;
    const file = path.join(dir, "spoiled.json");
    await writeFile(file, JSON.stringify(workflow));
    const data = path.join(dir, "data");

    const json = await cli(["validate", file, "--data", data, "--json"]);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toEqual({
      ok: false,
      problems: [
        { code: "input_check", nodeId: "1", input: "image", message: expect.stringMatching(/^names "missing\.png", which is not a file in any of /) },
        { code: "input_check", nodeId: "4", input: "strength", message: "0.2 × 3 steps leaves no step to run; raise strength or steps so that strength × steps ≥ 1" },
        { code: "input_check", nodeId: "5", input: "width", message: "is 513; it must be a multiple of 8, e.g. 512 or 520" },
      ],
    });
    // The message says where the picture was looked for: the data folder's input/, the workflow's folder, the examples.
    expect(JSON.parse(json.stdout).problems[0].message).toContain([path.join(data, "input"), dir, path.join(repo, "workflows")].join(", "));

    const text = await cli(["validate", file, "--data", data]);
    expect(text.code).toBe(1);
    expect(text.stdout).toBe("");
    expect(text.stderr.split("\n")).toEqual([
      `${file}: 3 problem(s)`,
      expect.stringMatching(/^ {2}- node 1, input "image": names "missing\.png"/),
      '  - node 4, input "strength": 0.2 × 3 steps leaves no step to run; raise strength or steps so that strength × steps ≥ 1',
      '  - node 5, input "width": is 513; it must be a multiple of 8, e.g. 512 or 520',
      "",
    ]);
    // validate only reads: no data folder appears.
    expect(existsSync(data)).toBe(false);

    // Put the picture in the data folder's input/: that problem goes, the others stay.
    await mkdir(path.join(data, "input"), { recursive: true });
    await writeFile(path.join(data, "input", "missing.png"), await readFile(path.join(repo, "workflows/examples/room.png")));
    const after = JSON.parse((await cli(["validate", file, "--data", data, "--json"])).stdout) as { problems: Array<{ nodeId: string }> };
    expect(after.problems.map((p) => p.nodeId)).toEqual(["4", "5"]);
  });

  it("knows Segmind's sizes and finds an empty file name and a name that leaves the folder", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "maskflow-validate-"));
    const workflow = await shippedInpaint();
    Object.assign(node(workflow, "5").inputs, { backend: "segmind", width: 768, height: 640 });
    node(workflow, "1").inputs.image = "";
    node(workflow, "2").inputs.image = "../../etc/passwd";
    const file = path.join(dir, "segmind.json");
    await writeFile(file, JSON.stringify(workflow));
    const result = await cli(["validate", file, "--data", path.join(dir, "data"), "--json"]);
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout).problems).toEqual([
      { code: "input_check", nodeId: "1", input: "image", message: "is empty; choose or upload an image" },
      { code: "input_check", nodeId: "2", input: "image", message: expect.stringMatching(/"\.\.\/\.\.\/etc\/passwd" leaves its folder/) },
      { code: "input_check", nodeId: "5", input: "height", message: 'is 640; backend "segmind" takes 512 or 768' },
    ]);
  });

  it("passes every shipped workflow: their pictures are found among the shipped examples", async () => {
    const data = path.join(await mkdtemp(path.join(os.tmpdir(), "maskflow-validate-")), "data");
    for (const name of ["inpaint", "lcm-inpaint", "remove-object", "remove-object-learned", "outpaint", "detail-pass", "segmind-inpaint"]) {
      const result = await cli(["validate", path.join(repo, "workflows", `${name}.json`), "--data", data]);
      expect(result.stderr).toBe("");
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(/: valid \(\d+ nodes\)\n$/);
    }
  });

  it("run stops on the same problems before it loads anything, exit 2", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "maskflow-validate-"));
    const workflow = await shippedInpaint();
    node(workflow, "5").inputs.height = 500;
    const file = path.join(dir, "spoiled.json");
    await writeFile(file, JSON.stringify(workflow));
    const out = path.join(dir, "out");
    // No --model and no model folder: a run that got as far as the engine would fail differently.
    const result = await cli(["run", file, "--out", out, "--data", path.join(dir, "data")]);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(`${file}: 1 problem(s)\n  - node 5, input "height": is 500; it must be a multiple of 8, e.g. 496 or 504\n`);
    expect(existsSync(out)).toBe(false);
  });
});

describe("POST /api/prompt refuses what a node's check finds, before queueing", () => {
  let server: TestServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it("a 400 naming node 5's width; nothing is queued", async () => {
    server = await startTestServer();
    const workflow = await shippedInpaint();
    node(workflow, "5").inputs.width = 513;
    const response = await api(server, "POST", "/api/prompt", { workflow });
    expect(response.status).toBe(400);
    expect(response.body.error.code).toBe("invalid_workflow");
    expect(response.body.error.details.problems).toEqual([
      { code: "input_check", nodeId: "5", input: "width", message: "is 513; it must be a multiple of 8, e.g. 512 or 520" },
    ]);
    expect(server.queue.status()).toEqual({ queueRemaining: 0, running: null });
  });
});

describe("a file that is not a workflow is named for what it is", () => {
  async function expectRefused(file: string, message: string) {
    for (const command of ["run", "validate"]) {
      const result = await cli([command, file, "--data", path.join(path.dirname(file), "data")]);
      expect(result.code).toBe(2);
      expect(result.stdout).toBe("");
      expect(result.stderr).toBe(`maskflow ${command}: "${file}" ${message}\n`);
      expect(result.stderr).not.toMatch(UNREADABLE);
    }
  }

  it("a JPEG (what Segmind answers), a WebP, a ZIP", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "maskflow-notworkflow-"));
    const picture = sharp({ create: { width: 16, height: 16, channels: 3, background: "#336699" } });
    await writeFile(path.join(dir, "out.jpg"), await picture.clone().jpeg().toBuffer());
    await writeFile(path.join(dir, "out.webp"), await picture.clone().webp().toBuffer());
    await writeFile(path.join(dir, "bundle.zip"), Buffer.from([0x50, 0x4b, 0x03, 0x04, 0x14, 0x00, 0x00, 0x00, 0x08, 0x00, 0xff, 0xfe]));
    await expectRefused(path.join(dir, "out.jpg"), "is a JPEG picture, not a workflow: a PNG written by SaveImage carries its workflow, a JPEG does not");
    await expectRefused(path.join(dir, "out.webp"), "is a WebP picture, not a workflow: a PNG written by SaveImage carries its workflow, a WebP does not");
    await expectRefused(path.join(dir, "bundle.zip"), "is a ZIP archive, not a workflow: a workflow is a .json file, or a PNG written by SaveImage");
  });

  it("binary data of no known kind, and text that is not UTF-8", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "maskflow-notworkflow-"));
    await writeFile(path.join(dir, "blob.json"), Buffer.from([0x7b, 0x00, 0x01, 0x02, 0x9c, 0xff, 0x00, 0x7d]));
    await writeFile(path.join(dir, "latin1.json"), Buffer.from('{"name": "caf\xe9"}', "latin1"));
    await expectRefused(path.join(dir, "blob.json"), "is not a text file (it is not UTF-8), so not a workflow: a workflow is a .json file, or a PNG written by SaveImage");
    await writeFile(path.join(dir, "nul.json"), Buffer.from('{"a": "\u0000"}', "utf8"));
    await expectRefused(path.join(dir, "nul.json"), "holds binary data, not a workflow: a workflow is a .json file, or a PNG written by SaveImage");
    await expectRefused(path.join(dir, "latin1.json"), "is not a text file (it is not UTF-8), so not a workflow: a workflow is a .json file, or a PNG written by SaveImage");
  });

  it("text that is not JSON: the line, column and reason, never the text itself", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "maskflow-notworkflow-"));
    await writeFile(path.join(dir, "notes.txt"), "remember to buy milk\n");
    await writeFile(path.join(dir, "broken.json"), '{\n  "format": "maskflow-workflow",\n  "version": 1,\n  "nodes": [,]\n}\n');
    await writeFile(path.join(dir, "cut.json"), '{"format": "maskflow-workflow", "nodes": [');
    await expectRefused(path.join(dir, "notes.txt"), 'is not JSON (line 1, column 1: unexpected "r" where a value was expected)');
    await expectRefused(path.join(dir, "broken.json"), 'is not JSON (line 4, column 13: unexpected "," where a value was expected)');
    await expectRefused(path.join(dir, "cut.json"), "is not JSON (line 1, column 43: the text ends where a value was expected)");
  });

  it("a JSON file saved with a byte-order mark is read", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "maskflow-notworkflow-"));
    const file = path.join(dir, "bom.json");
    await writeFile(file, "\ufeff" + (await readFile(path.join(repo, "workflows/remove-object.json"), "utf8")));
    const result = await cli(["validate", file, "--data", path.join(dir, "data")]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
  });
});
