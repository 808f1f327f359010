import { mkdtemp, readFile, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SegmindClient } from "../server/engines/segmind/segmind-client.ts";
import type { RunningServer } from "../server/maskflow-server.ts";
import { SettingsStore, segmindKeyFrom } from "../server/storage/settings-store.ts";
import { type FakeSegmind, startFakeSegmind } from "./helpers/fake-segmind.ts";
import { api, startTestServer, type TestServer } from "./helpers/test-server.ts";

let fake: FakeSegmind;
let server: TestServer;
let settingsFile: string;
const environmentKey = process.env.SEGMIND_API_KEY;

beforeAll(async () => {
  // The key must come from the settings here, not from the machine's environment.
  delete process.env.SEGMIND_API_KEY;
  fake = await startFakeSegmind();
  const dataDir = await mkdtemp(path.join(os.tmpdir(), "maskflow-settings-"));
  settingsFile = path.join(dataDir, "settings.json");
  const settings = await new SettingsStore(settingsFile).load();
  server = await startTestServer({
    dataDir,
    settings,
    engines: { segmind: new SegmindClient({ baseUrl: fake.url, apiKey: segmindKeyFrom(settings), retryBaseDelayMs: 1 }) },
  });
});

afterAll(async () => {
  await server?.close();
  await fake?.close();
  if (environmentKey !== undefined) process.env.SEGMIND_API_KEY = environmentKey;
});

async function runSegmindWorkflow() {
  const workflow = JSON.parse(await readFile(path.join(import.meta.dirname, "../workflows/segmind-inpaint.json"), "utf8"));
  const { body } = await api(server, "POST", "/api/prompt", { workflow });
  return server.queue.waitFor(body.id);
}

describe("settings: the Segmind key set from the editor", () => {
  it("is used by the Segmind backend once set, is never sent back, and is kept readable by its owner only", async () => {
    expect((await api(server, "GET", "/api/settings")).body).toEqual({ segmindApiKey: "none" });
    const without = await runSegmindWorkflow();
    expect(without.status).toBe("error");
    expect(without.error?.message).toMatch(/SEGMIND_API_KEY/);
    expect(server.log.text("warn")).toMatch(/node 5 \(Inpaint\) failed: no Segmind API key/);

    const saved = await api(server, "PUT", "/api/settings", { segmindApiKey: fake.apiKey });
    expect(saved.body).toEqual({ segmindApiKey: "settings" });
    expect(JSON.stringify(saved.body)).not.toContain(fake.apiKey);
    expect((await stat(settingsFile)).mode & 0o777).toBe(0o600);

    const withKey = await runSegmindWorkflow();
    expect(withKey.status).toBe("success");
    expect(fake.requests.at(-1)!.headers["x-api-key"]).toBe(fake.apiKey);

    expect((await api(server, "PUT", "/api/settings", { segmindApiKey: null })).body).toEqual({ segmindApiKey: "none" });
    const bad = await api(server, "PUT", "/api/settings", { segmindKey: "typo" });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toMatch(/segmindKey/);
  });

  it("a worker following the shared folder sees a key set after it started", async () => {
    const follower = await new SettingsStore(settingsFile, { followDisk: true }).load();
    expect(follower.segmindApiKey).toBeUndefined();
    await api(server, "PUT", "/api/settings", { segmindApiKey: "later-key" });
    expect(follower.segmindApiKey).toBe("later-key");
  });
});
