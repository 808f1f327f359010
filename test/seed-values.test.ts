import { mkdtemp } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../server/cli/main.ts";
import { OnnxEngine } from "../server/engines/onnx/onnx-engine.ts";
import { ensureTinyModels } from "./fixtures/make-tiny-models.ts";
import { api, startTestServer, type TestServer } from "./helpers/test-server.ts";
import { connectClient } from "./helpers/ws-client.ts";

const repo = path.resolve(import.meta.dirname, "..");
/** The shipped default graph on the tiny model, as small and short as it goes. */
const SMALL = ["--set", "5.width=64", "--set", "5.height=64", "--set", "4.steps=1"];
const BIG_SEED = "18446744073709551615";

let tinyModel: string;
beforeAll(async () => {
  tinyModel = (await ensureTinyModels()).fp32;
});

function sink() {
  let text = "";
  const stream = Object.assign(new Writable({ write(chunk, _encoding, done) { text += chunk; done(); } }), { isTTY: false });
  return { stream, text: () => text };
}

async function runJson(extra: string[]) {
  const dir = await mkdtemp(path.join(os.tmpdir(), "maskflow-seed-"));
  const stdout = sink();
  const stderr = sink();
  const args = ["run", path.join(repo, "workflows/inpaint.json"), "--model", tinyModel, "--out", path.join(dir, "out"), "--data", path.join(dir, "data"), "--json", ...SMALL, ...extra];
  const code = await main(args, { stdout: stdout.stream, stderr: stderr.stream });
  expect(code, stderr.text()).toBe(0);
  return JSON.parse(stdout.text()) as { values: Record<string, Record<string, unknown>> };
}

describe("seeds are reported as JSON numbers up to 2^53 − 1, as strings above", () => {
  it("maskflow run --json", async () => {
    const small = await runJson(["--set", "4.seed=42"]);
    expect(small.values["4"]).toEqual({ seed: 42 });
    expect(small.values["5"]).toEqual({ seed: 42 });
    const largestExact = await runJson(["--set", `4.seed=${Number.MAX_SAFE_INTEGER}`]);
    expect(largestExact.values["4"]).toEqual({ seed: Number.MAX_SAFE_INTEGER });
    const big = await runJson(["--set", `4.seed=${BIG_SEED}`]);
    expect(big.values["4"]).toEqual({ seed: BIG_SEED });
    expect(big.values["5"]).toEqual({ seed: BIG_SEED });
  });

  describe("the server: WebSocket `executed` and history", () => {
    let server: TestServer;
    let engine: OnnxEngine;
    beforeAll(async () => {
      // The tiny model's parent is the models folder, so a Load Checkpoint can name it.
      engine = new OnnxEngine({ threads: 1, modelsDir: path.dirname(tinyModel) });
      server = await startTestServer({ engines: { local: engine } });
    });
    afterAll(async () => {
      await server?.close();
      await engine?.release();
    });

    it("a seed of 7 is 7 in both; a seed above 2^53 a decimal string in both", async () => {
      const client = await connectClient(server.url, "seeds");
      try {
        const workflow = (await api(server, "GET", "/api/workflows/inpaint")).body;
        const scheduler = workflow.nodes.find((n: { id: string }) => n.id === "4");
        const inpaint = workflow.nodes.find((n: { id: string }) => n.id === "5");
        workflow.nodes.push({ id: "7", type: "CheckpointLoader", inputs: { checkpoint: path.basename(tinyModel) } });
        Object.assign(inpaint.inputs, { width: 64, height: 64, model: ["7", "model"] });
        for (const [seed, reported] of [[7, 7], [BIG_SEED, BIG_SEED]] as const) {
          Object.assign(scheduler.inputs, { steps: 1, seed });
          const queued = await api(server, "POST", "/api/prompt", { workflow, clientId: "seeds" });
          expect(queued.status, JSON.stringify(queued.body)).toBe(200);
          const done = await client.waitFor((m) => m.data?.jobId === queued.body.id && /^execution_(success|error)$/.test(m.type), 60_000);
          expect(done.type, JSON.stringify(done.data)).toBe("execution_success");
          const executed = client.messages.filter((m) => m.type === "executed" && m.data.jobId === queued.body.id);
          expect(executed.find((m) => m.data.node === "4")?.data.output.values).toEqual({ seed: reported });
          expect(executed.find((m) => m.data.node === "5")?.data.output.values).toEqual({ seed: reported });
          const history = await api(server, "GET", `/api/history/${queued.body.id}`);
          expect(history.body.outputs["4"].values).toEqual({ seed: reported });
          expect(history.body.outputs["5"].values).toEqual({ seed: reported });
        }
      } finally {
        client.close();
      }
    });
  });
});
