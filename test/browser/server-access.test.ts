import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Browser } from "playwright-core";
import { build } from "vite";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../../server/maskflow-server.ts";
import { startTestServer } from "../helpers/test-server.ts";
import { launchBrowser } from "./editor-page.ts";

let browser: Browser;
let clientDir = "";
const servers: RunningServer[] = [];

beforeAll(async () => {
  clientDir = await mkdtemp(path.join(os.tmpdir(), "maskflow-client-"));
  [browser] = await Promise.all([
    launchBrowser(),
    build({ root: "client", logLevel: "silent", build: { outDir: clientDir, emptyOutDir: true, sourcemap: false } }),
  ]);
});

afterAll(async () => {
  await browser?.close();
  await Promise.all(servers.map((s) => s.close()));
  await rm(clientDir, { recursive: true, force: true });
});

async function newPage() {
  const context = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  await context.route(/^(?!https?:\/\/127\.0\.0\.1|ws:\/\/127\.0\.0\.1|blob:|data:)/, (route) => route.abort());
  return { context, page: await context.newPage() };
}

const editorStarted = () => (window as any).maskflow?.schemas?.length > 0 && (window as any).maskflow.nodes().length > 0;

describe("reaching the server", () => {
  it("asks once for the API key of a server started with MASKFLOW_API_KEYS, then works with it", async () => {
    const server = await startTestServer({ clientDir, apiKeys: ["team-key"] });
    servers.push(server);
    const { context, page } = await newPage();
    const asked: string[] = [];
    page.on("dialog", (dialog) => {
      asked.push(dialog.message());
      void dialog.accept(asked.length === 1 ? "wrong-key" : "team-key");
    });
    await page.goto(server.url);
    await page.waitForFunction(editorStarted, null, { timeout: 20_000 });
    expect(asked).toEqual(["This Maskflow server needs an API key:", "That key was refused. API key:"]);
    // The WebSocket got in with the session cookie too: the banner is down.
    await page.waitForFunction(() => (document.querySelector("#connection-banner") as HTMLElement).hidden, null, { timeout: 10_000 });
    // The page signed in with the key and kept nothing a script can read: the session cookie is HttpOnly, made by
    // the server, and holds no key.
    expect(await page.evaluate(() => document.cookie)).not.toContain("team-key");
    const cookies = await context.cookies(server.url);
    expect(cookies.map((c) => c.name)).toEqual(["maskflow_session"]);
    expect(cookies[0]).toMatchObject({ httpOnly: true, sameSite: "Strict" });
    expect(cookies[0].value).not.toContain("team-key");
    // Pictures load through the same cookie (an <img src> sends no header).
    expect((await context.request.get(`${server.url}/api/files?type=input`)).status()).toBe(200);
    await context.close();
  });

  it("waits with the away banner when the API does not answer at start-up, then starts by itself", async () => {
    const server = await startTestServer({ clientDir });
    servers.push(server);
    const { context, page } = await newPage();
    // The page loads, but its first calls for the node list fail as if the server were away.
    let refused = 0;
    await page.route("**/api/nodes", async (route) => {
      if (refused < 2) {
        refused++;
        await route.abort("connectionrefused");
      } else {
        await route.continue();
      }
    });
    await page.goto(server.url);
    await page.waitForFunction(() => !(document.querySelector("#connection-banner") as HTMLElement).hidden, null, { timeout: 10_000 });
    await page.waitForFunction(editorStarted, null, { timeout: 20_000 });
    expect(refused).toBe(2);
    expect(await page.evaluate(() => (document.querySelector("#connection-banner") as HTMLElement).hidden)).toBe(true);
    await context.close();
  });

  it("sets the Segmind key on the server from the toolbar, without the page ever reading it back", async () => {
    const server = await startTestServer({ clientDir });
    servers.push(server);
    const { context, page } = await newPage();
    await page.goto(server.url);
    await page.waitForFunction(editorStarted, null, { timeout: 20_000 });
    const prompts: string[] = [];
    page.on("dialog", (dialog) => {
      prompts.push(dialog.message());
      void dialog.accept("sg-key-from-the-editor");
    });
    await page.click("#segmind-key");
    await page.locator(".mf-notice", { hasText: "Segmind key saved" }).waitFor({ timeout: 10_000 });
    expect(prompts[0]).toMatch(/No key is set/);
    const settings = await (await fetch(`${server.url}/api/settings`)).json();
    expect(settings).toEqual({ segmindApiKey: "settings" });
    expect(JSON.parse(await readFile(server.folders.settingsFile, "utf8"))).toEqual({ segmindApiKey: "sg-key-from-the-editor" });
    await context.close();
  });
});
