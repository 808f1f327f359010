import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBuiltinRegistry } from "../nodes/index.ts";
import { SegmindClient } from "../server/engines/segmind/segmind-client.ts";
import { Executor } from "../server/executor/executor.ts";
import { DataFolders } from "../server/storage/data-folders.ts";
import { startFakeSegmind, type FakeSegmind } from "./helpers/fake-segmind.ts";
import { createTestContext } from "./helpers/node-context.ts";

let fake: FakeSegmind;
beforeAll(async () => {
  fake = await startFakeSegmind({ credits: 5 });
});
afterAll(async () => {
  await fake.close();
});

function graph(backend: string, scheduler: Record<string, unknown> = {}) {
  return {
    format: "maskflow-workflow",
    version: 1,
    nodes: [
      { id: "1", type: "LoadImage", inputs: { image: "examples/room.png" } },
      { id: "2", type: "LoadMask", inputs: { image: "examples/room-mask.png" } },
      { id: "3", type: "Prompt", inputs: { positive: "a potted plant", negative: "blurry" } },
      { id: "4", type: "Scheduler", inputs: { scheduler: "Euler a", steps: 20, guidance: 7.5, strength: 1, seed: "17123564234", ...scheduler } },
      { id: "5", type: "Inpaint", inputs: { image: ["1", "image"], mask: ["2", "mask"], prompt: ["3", "prompt"], scheduler: ["4", "scheduler"], backend, samples: 2 } },
      { id: "6", type: "SaveImage", inputs: { images: ["5", "images"] } },
    ],
  };
}

async function executorWith(client: SegmindClient) {
  const { folders } = await createTestContext();
  // The graph loads the shipped example pictures.
  const storage = new DataFolders(folders.root, { extraInputRoots: [path.join(import.meta.dirname, "../workflows")] });
  return new Executor({ registry: createBuiltinRegistry(), storage, engines: { segmind: client } });
}

describe("Inpaint node, backend segmind", () => {
  it("sends the graph's request to Segmind and saves what comes back, reporting credits and seed", async () => {
    const executor = await executorWith(new SegmindClient({ baseUrl: fake.url, apiKey: fake.apiKey, retryBaseDelayMs: 1 }));
    const before = fake.requests.length;
    const result = await executor.run(graph("segmind"), { jobId: "s1" });
    expect(result.error).toBeUndefined();
    expect(result.status).toBe("success");
    expect(result.outputs["6"].images).toHaveLength(2);
    expect(result.outputs["5"].values).toMatchObject({ seed: 17123564234, remaining_credits: expect.any(Number) });
    const sent = fake.requests.slice(before).map((r) => r.body!);
    expect(sent).toHaveLength(2);
    expect(sent[0]).toMatchObject({ prompt: "a potted plant", negative_prompt: "blurry", scheduler: "Euler a", num_inference_steps: 20, img_width: 512 });
    expect(String(sent[0].seed)).toBe("17123564234");
    expect(fake.requests.at(-1)!.headers["x-api-key"]).toBe(fake.apiKey);
  });

  it("shows Segmind's errors on the node: a wrong key, steps outside Segmind's range", async () => {
    const wrongKey = await executorWith(new SegmindClient({ baseUrl: fake.url, apiKey: "nope", retryBaseDelayMs: 1 }));
    const unauthorised = await wrongKey.run(graph("segmind"), { jobId: "s2" });
    expect(unauthorised.status).toBe("error");
    expect(unauthorised.error).toMatchObject({ node: "5", nodeType: "Inpaint" });
    expect(unauthorised.error!.message).toMatch(/401|key/i);

    const before = fake.requests.length;
    const executor = await executorWith(new SegmindClient({ baseUrl: fake.url, apiKey: fake.apiKey }));
    const tooFewSteps = await executor.run(graph("segmind", { steps: 10 }), { jobId: "s3" });
    expect(tooFewSteps.error!.message).toMatch(/num_inference_steps must be an integer from 20 to 100/);
    expect(fake.requests.length).toBe(before);
  });

  it("says so when no key is set", async () => {
    const executor = await executorWith(new SegmindClient({ baseUrl: fake.url, apiKey: "" }));
    const result = await executor.run(graph("segmind"), { jobId: "s4" });
    expect(result.error!.message).toMatch(/SEGMIND_API_KEY/);
  });
});
