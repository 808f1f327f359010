/**
 * The mask painter paints grey: in a real Chromium against a real server, a stroke with a soft brush (hardness 0)
 * at 50 % opacity is painted on the default graph's Load Mask, saved, and the mask that LoadMask then reads from the
 * server's input folder holds it: about 128 along the stroke's middle, falling smoothly to 0 at its edge, and no
 * white. A second pass over the same place in the same stroke does not build past 50 %.
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Browser, Page } from "playwright-core";
import { build } from "vite";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LoadMaskNode } from "../../nodes/mask/load-mask.ts";
import type { Mask } from "../../nodes/socket-types.ts";
import type { RunningServer } from "../../server/maskflow-server.ts";
import { DataFolders } from "../../server/storage/data-folders.ts";
import { createTestContext } from "../helpers/node-context.ts";
import { startTestServer } from "../helpers/test-server.ts";
import { launchBrowser, openEditor, pointInWidget } from "./editor-page.ts";

/** Node id of the Load Mask in workflows/inpaint.json, the default graph. */
const LOAD_MASK = "2";

let server: RunningServer;
let browser: Browser;
let dataDir: string;
const temporary: string[] = [];

beforeAll(async () => {
  const clientDir = await mkdtemp(path.join(os.tmpdir(), "maskflow-client-"));
  dataDir = await mkdtemp(path.join(os.tmpdir(), "maskflow-soft-paint-"));
  temporary.push(clientDir, dataDir);
  await build({ root: "client", logLevel: "silent", build: { outDir: clientDir, emptyOutDir: true, sourcemap: false } });
  server = await startTestServer({ clientDir, dataDir });
  browser = await launchBrowser();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await Promise.all(temporary.map((dir) => rm(dir, { recursive: true, force: true })));
});

function widgetValueOf(page: Page, nodeId: string, widget: string): Promise<unknown> {
  return page.evaluate(([id, name]) => (window as any).maskflow.nodeByDocumentId(id).widgets.find((w: { name: string }) => w.name === name).value, [nodeId, widget] as const);
}

/** The mask as the server's LoadMask node reads the file the widget now names. */
async function maskOnServer(file: string): Promise<Mask> {
  const ctx = await createTestContext();
  const { mask } = await LoadMaskNode.run({ image: file, channel: "luminance" }, { ...ctx, storage: new DataFolders(dataDir) });
  return mask as Mask;
}

describe("the mask painter's soft brush", () => {
  it("paints a 50 % soft stroke that reaches LoadMask as grey: ~128 in the middle, a smooth fall to 0, no white", async () => {
    const { page, context, errors } = await openEditor(browser, server.url);
    const [bx, by] = await pointInWidget(page, LOAD_MASK, "paint mask");
    await page.mouse.click(bx, by);
    const painter = page.locator('[data-testid="mask-editor"]');
    await painter.waitFor({ timeout: 10_000 });
    await page.click('[data-action="clear"]');
    await page.locator('[data-control="hardness"]').fill("0");
    // Opacity by key, as in painting programs: 5 is 50 %.
    await page.keyboard.press("5");
    expect(await page.locator('[data-show="brush-opacity"]').textContent()).toBe("50%");
    expect(await page.locator('[data-show="hardness"]').textContent()).toBe("0%");
    for (let i = 0; i < 6; i++) await page.keyboard.press("]");
    const view = (await page.locator(".mf-mask-view").boundingBox())!;
    const [cx, cy] = [view.x + view.width / 2, view.y + view.height / 2];
    // Right, then back over the same line: within one stroke the dabs do not add up.
    await page.mouse.move(cx - view.height * 0.3, cy);
    await page.mouse.down();
    await page.mouse.move(cx + view.height * 0.3, cy, { steps: 25 });
    await page.mouse.move(cx - view.height * 0.1, cy, { steps: 15 });
    await page.mouse.up();
    await page.keyboard.press("Enter");
    await painter.waitFor({ state: "detached", timeout: 10_000 });
    await expect.poll(() => widgetValueOf(page, LOAD_MASK, "image"), { timeout: 10_000 }).not.toBe("examples/room-mask.png");

    const mask = await maskOnServer(String(await widgetValueOf(page, LOAD_MASK, "image")));
    expect([mask.width, mask.height]).toEqual([512, 512]);
    const histogram = new Array<number>(256).fill(0);
    for (const value of mask.data) histogram[value]++;
    const max = histogram.findLastIndex((count) => count > 0);
    // 50 % of 255, give or take the PNG's and the canvas's rounding; nothing near white.
    expect(max).toBeGreaterThanOrEqual(126);
    expect(max).toBeLessThanOrEqual(129);
    const plateau = histogram.slice(126, 130).reduce((sum, n) => sum + n, 0);
    const ramp = histogram.slice(1, 126).reduce((sum, n) => sum + n, 0);
    // Hardness 0: full strength only on the line the dab centres travelled, a pixel wide.
    expect(plateau).toBeGreaterThan(50);
    // A soft brush: many pixels on the way down, and every grey level from 10 to 120 present somewhere.
    expect(ramp).toBeGreaterThan(plateau);
    for (let level = 10; level <= 120; level += 10) expect(histogram.slice(level - 5, level + 5).some((n) => n > 0), `grey ${level}`).toBe(true);

    // Across the stroke, at the middle column: up to the plateau and down again, never a step of more than a third of it.
    const column = mask.width / 2;
    const profile = Array.from({ length: mask.height }, (_, y) => mask.data[y * mask.width + column]);
    const top = profile.indexOf(Math.max(...profile));
    for (let y = 1; y < mask.height; y++) expect(Math.abs(profile[y] - profile[y - 1]), `row ${y}`).toBeLessThan(43);
    expect(profile.slice(0, top + 1).every((v, i, all) => i === 0 || v >= all[i - 1])).toBe(true);
    expect(errors).toEqual([]);
    await context.close();
  });
});
