/**
 * What a user does on the graph with mouse and keyboard, in a real Chromium against a real server
 * on 127.0.0.1 (the client built fresh with vite): dropping a plain picture on the canvas, the
 * LoadImage upload button, copy/paste, dragging links between compatible and incompatible sockets,
 * Ctrl+G and Delete. Every check reads what the user would get: the document the page saves, the
 * files the server holds.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { build } from "vite";
import type { Browser, FileChooser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../../server/maskflow-server.ts";
import { api, startTestServer } from "../helpers/test-server.ts";
import { documentOf, drag, type EditorPage, launchBrowser, openEditor as openEditorAt, pointInWidget, pointOnSocket, redrawCanvas } from "./editor-page.ts";

/** Node ids of the shipped workflow below. */
const LOAD_IMAGE = "1";
const RESIZE = "2";
const GROW_MASK = "3";

/** LoadImage beside an unlinked ResizeImage (IMAGE input) and GrowMask (MASK input): runs without any model. */
const SHIPPED_WORKFLOW = {
  format: "maskflow-workflow",
  version: 1,
  nodes: [
    { id: LOAD_IMAGE, type: "LoadImage", inputs: { image: "base.png" }, ui: { pos: [40, 60] } },
    { id: RESIZE, type: "ResizeImage", inputs: { width: 200, height: 120, mode: "stretch", kernel: "nearest" }, ui: { pos: [420, 60] } },
    { id: GROW_MASK, type: "GrowMask", inputs: { pixels: 5 }, ui: { pos: [420, 330] } },
  ],
};

let server: RunningServer;
let browser: Browser;
const temporary: string[] = [];

const pngOf = (width: number, height: number, rgb: [number, number, number]): Promise<Buffer> =>
  sharp({ create: { width, height, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } }).png().toBuffer();

beforeAll(async () => {
  const clientDir = await mkdtemp(path.join(os.tmpdir(), "maskflow-client-"));
  const shipped = await mkdtemp(path.join(os.tmpdir(), "maskflow-shipped-"));
  temporary.push(clientDir, shipped);
  // The shipped folder is also an input root, so base.png is a picture LoadImage can show.
  await Promise.all([
    build({ root: "client", logLevel: "silent", build: { outDir: clientDir, emptyOutDir: true, sourcemap: false } }),
    writeFile(path.join(shipped, "interactions.json"), JSON.stringify(SHIPPED_WORKFLOW)),
    pngOf(96, 64, [200, 120, 60]).then((png) => writeFile(path.join(shipped, "base.png"), png)),
  ]);
  server = await startTestServer({ clientDir, shippedWorkflowsDir: shipped });
  browser = await launchBrowser();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await Promise.all(temporary.map((dir) => rm(dir, { recursive: true, force: true })));
});

/** A fresh profile on the editor with the shipped workflow drawn once (widgets get their places when drawn). */
async function openEditor(): Promise<EditorPage> {
  const editor = await openEditorAt(browser, server.url);
  await redrawCanvas(editor.page);
  return editor;
}

const nodeIdsOf = async (page: Page): Promise<string[]> => (await documentOf(page)).nodes.map((node) => node.id);

/** Page coordinates of a node's title bar, a little right of its left edge (clear of the collapse dot). */
async function pointOnTitle(page: Page, id: string): Promise<[number, number]> {
  return page.evaluate((nodeId) => {
    const app = (window as any).maskflow;
    const node = app.nodeByDocumentId(nodeId);
    return app.toClient([node.pos[0] + 80, node.pos[1] - 15]);
  }, id);
}

/** A point on the canvas with no node under it (bottom right, away from the shipped graph). */
async function emptyCanvasPoint(page: Page): Promise<[number, number]> {
  const box = (await page.locator("#graph-canvas").boundingBox())!;
  const point: [number, number] = [box.x + box.width - 120, box.y + box.height - 120];
  const onNode = await page.evaluate(([x, y]) => {
    const app = (window as any).maskflow;
    const rect = app.canvasElement.getBoundingClientRect();
    const ratio = app.canvasElement.width / rect.width || 1;
    const [gx, gy] = app.canvas.ds.convertCanvasToOffset([(x - rect.left) * ratio, (y - rect.top) * ratio]);
    return app.graph.getNodeOnPos(gx, gy) != null;
  }, point);
  expect(onNode).toBe(false);
  return point;
}

/**
 * Clicks a node's title until the canvas has exactly that node selected: a slow frame can leave the
 * first click on a canvas that has not laid the node out yet.
 */
async function selectByTitle(page: Page, id: string, modifiers: Array<"Shift"> = []): Promise<void> {
  const isSelected = () =>
    page.evaluate((nodeId) => {
      const app = (window as any).maskflow;
      return app.canvas.selectedItems.has(app.nodeByDocumentId(nodeId));
    }, id);
  for (let attempt = 0; attempt < 5 && !(await isSelected()); attempt++) {
    const [x, y] = await pointOnTitle(page, id);
    for (const key of modifiers) await page.keyboard.down(key);
    await page.mouse.click(x, y);
    for (const key of modifiers) await page.keyboard.up(key);
  }
  expect(await isSelected()).toBe(true);
}

async function inputFilesOnServer(): Promise<string[]> {
  const listed = await api(server, "GET", "/api/files?type=input");
  expect(listed.status).toBe(200);
  return listed.body as string[];
}

describe("editor interactions with mouse and keyboard", () => {
  it("turns a plain picture dropped on the empty canvas into an uploaded LoadImage node", async () => {
    const { context, page, errors } = await openEditor();
    const [x, y] = await emptyCanvasPoint(page);
    const png = await pngOf(40, 30, [20, 180, 90]);
    // Playwright cannot drag an OS file in; the drop event a browser fires for one is what the editor sees.
    await page.evaluate(
      ({ base64, clientX, clientY }) => {
        const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], "dropped-plain.png", { type: "image/png" }));
        const canvas = document.querySelector("#graph-canvas")!;
        canvas.dispatchEvent(new DragEvent("dragover", { dataTransfer: transfer, clientX, clientY, bubbles: true, cancelable: true }));
        canvas.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, clientX, clientY, bubbles: true, cancelable: true }));
      },
      { base64: png.toString("base64"), clientX: x, clientY: y },
    );
    const handle = await page.waitForFunction(
      () => {
        const app = (window as any).maskflow;
        const node = app.nodes().find((n: { id: number; type: string }) => n.type === "LoadImage" && String(n.id) !== "1");
        const value = node?.widgets.find((w: { name: string }) => w.name === "image")?.value;
        return value ? { id: String(node.id), value } : undefined;
      },
      null,
      { timeout: 10_000 },
    );
    const added = (await handle.jsonValue()) as { id: string; value: string };
    expect(added.value).toMatch(/^dropped-plain.*\.png$/);
    expect(await inputFilesOnServer()).toContain(added.value);
    // The picture did not replace the graph (it carries no workflow): the shipped nodes are all still there.
    const doc = await documentOf(page);
    expect(doc.nodes.map((node) => node.id)).toEqual([LOAD_IMAGE, RESIZE, GROW_MASK, added.id]);
    expect(doc.nodes[3]).toMatchObject({ type: "LoadImage", inputs: { image: added.value } });
    // The new node sits where the picture was dropped.
    const [nodeX, nodeY] = await page.evaluate((id) => {
      const app = (window as any).maskflow;
      return app.toClient(app.nodeByDocumentId(id).pos);
    }, added.id);
    expect(Math.abs(nodeX - x)).toBeLessThan(3);
    expect(Math.abs(nodeY - y)).toBeLessThan(3);
    // And it shows the uploaded picture.
    await page.waitForFunction((id) => (window as any).maskflow.nodeView(id)?.loaded === 1, added.id, { timeout: 10_000 });
    expect(errors).toEqual([]);
    await context.close();
  });

  it("uploads the file chosen through LoadImage's upload button into its image widget", async () => {
    const { context, page, errors } = await openEditor();
    // Playwright catches a file picker only once its listener has reached the browser, which a
    // waitForEvent armed just before the click sometimes has not (about one run in three): arm it now.
    const choosers: FileChooser[] = [];
    page.on("filechooser", (opened) => void choosers.push(opened));
    // The node grows to fit its picture once it loads, so aim only then, and aim again if a slow frame lost the click.
    await page.waitForFunction((id) => (window as any).maskflow.nodeView(id)?.loaded === 1, LOAD_IMAGE, { timeout: 10_000 });
    const png = await pngOf(24, 24, [10, 20, 250]);
    for (let attempt = 0; attempt < 4 && !choosers.length; attempt++) {
      await redrawCanvas(page);
      const [bx, by] = await pointInWidget(page, LOAD_IMAGE, "upload image");
      await page.mouse.click(bx, by);
      await expect.poll(() => choosers.length, { timeout: 2_500 }).toBeGreaterThan(0).catch(() => {});
    }
    const chooser = choosers[0];
    if (!chooser) throw new Error("the upload button never opened a file chooser");
    expect(chooser.isMultiple()).toBe(false);
    await chooser.setFiles({ name: "chosen.png", mimeType: "image/png", buffer: png });
    const handle = await page.waitForFunction(
      (id) => {
        const node = (window as any).maskflow.nodeByDocumentId(id);
        const value = node.widgets.find((w: { name: string }) => w.name === "image").value as string;
        return value !== "base.png" ? value : undefined;
      },
      LOAD_IMAGE,
      { timeout: 10_000 },
    );
    const name = (await handle.jsonValue()) as string;
    expect(name).toMatch(/^chosen.*\.png$/);
    expect(await inputFilesOnServer()).toContain(name);
    const loadImage = (await documentOf(page)).nodes.find((node) => node.id === LOAD_IMAGE)!;
    expect(loadImage.inputs.image).toBe(name);
    // The node now shows the chosen picture, not the shipped one.
    await page.waitForFunction(
      ([id, file]) => {
        const view = (window as any).maskflow.nodeView(id);
        return view?.loaded === 1 && view.images[0].includes(encodeURIComponent(file));
      },
      [LOAD_IMAGE, name] as const,
      { timeout: 10_000 },
    );
    expect(errors).toEqual([]);
    await context.close();
  });

  it("copies the selected node with Ctrl+C and pastes a twin with the same values at the mouse with Ctrl+V", async () => {
    const { context, page, errors } = await openEditor();
    await selectByTitle(page, RESIZE);
    await page.keyboard.press("Control+c");
    const [x, y] = await emptyCanvasPoint(page);
    await page.mouse.move(x, y, { steps: 4 });
    await page.keyboard.press("Control+v");
    await page.waitForFunction(() => (window as any).maskflow.nodes().length === 4, null, { timeout: 5_000 });
    const doc = await documentOf(page);
    const original = doc.nodes.find((node) => node.id === RESIZE)!;
    const twins = doc.nodes.filter((node) => node.type === "ResizeImage" && node.id !== RESIZE);
    expect(twins).toHaveLength(1);
    expect(twins[0].inputs).toEqual(original.inputs);
    expect(original.inputs).toMatchObject({ width: 200, height: 120, kernel: "nearest" });
    // Pasted where the mouse was, not on top of the original.
    const [twinX, twinY] = await page.evaluate((id) => {
      const app = (window as any).maskflow;
      return app.toClient(app.nodeByDocumentId(id).pos);
    }, twins[0].id);
    expect(Math.abs(twinX - x)).toBeLessThan(3);
    expect(Math.abs(twinY - y)).toBeLessThan(3);

    // A pasted Load Image reads the same file and shows its picture, as the original does.
    await selectByTitle(page, LOAD_IMAGE);
    await page.keyboard.press("Control+c");
    await page.mouse.move(x - 300, y, { steps: 4 });
    await page.keyboard.press("Control+v");
    const pasted = await page.waitForFunction(
      () => {
        const nodes = (window as any).maskflow.nodes().filter((n: { type: string }) => n.type === "LoadImage");
        return nodes.length === 2 ? String(nodes[1].id) : undefined;
      },
      null,
      { timeout: 5_000 },
    );
    const pastedId = (await pasted.jsonValue()) as string;
    expect((await documentOf(page)).nodes.find((node) => node.id === pastedId)!.inputs).toEqual({ image: "base.png" });
    await page.waitForFunction((id) => (window as any).maskflow.nodeView(id)?.loaded === 1, pastedId, { timeout: 5_000 });
    expect(errors).toEqual([]);
    await context.close();
  });

  it("connects an IMAGE output to an IMAGE input but never to a MASK input", async () => {
    const { context, page, errors } = await openEditor();
    const imageOut = await pointOnSocket(page, LOAD_IMAGE, "output", "image");
    const linkedInputs = async () => {
      const doc = await documentOf(page);
      return {
        mask: doc.nodes.find((node) => node.id === GROW_MASK)!.inputs.mask,
        image: doc.nodes.find((node) => node.id === RESIZE)!.inputs.image,
      };
    };

    // Drop on the MASK socket itself, then on the body of the node that has it: neither connects.
    await drag(page, imageOut, await pointOnSocket(page, GROW_MASK, "input", "mask"));
    await redrawCanvas(page);
    expect((await linkedInputs()).mask).toBeUndefined();
    const [maskNodeX, maskNodeY] = await page.evaluate((id) => {
      const app = (window as any).maskflow;
      const node = app.nodeByDocumentId(id);
      return app.toClient([node.pos[0] + node.size[0] / 2, node.pos[1] + node.size[1] / 2]);
    }, GROW_MASK);
    await drag(page, imageOut, [maskNodeX, maskNodeY]);
    await redrawCanvas(page);
    expect(await linkedInputs()).toEqual({ mask: undefined, image: undefined });
    expect(await page.evaluate(() => (window as any).maskflow.graph._links.size)).toBe(0);

    // IMAGE into IMAGE connects; a slow frame can swallow the start of a drag, so try again a few times.
    const resizeIn = await pointOnSocket(page, RESIZE, "input", "image");
    for (let attempt = 0; attempt < 3 && (await linkedInputs()).image === undefined; attempt++) {
      await drag(page, imageOut, resizeIn);
      await redrawCanvas(page);
    }
    expect(await linkedInputs()).toEqual({ mask: undefined, image: [LOAD_IMAGE, "image"] });

    // The same drop on the MASK socket does connect a MASK output: the refusals above were the type rule, not a missed aim.
    const maskOut = await pointOnSocket(page, LOAD_IMAGE, "output", "mask");
    const maskIn = await pointOnSocket(page, GROW_MASK, "input", "mask");
    for (let attempt = 0; attempt < 3 && (await linkedInputs()).mask === undefined; attempt++) {
      await drag(page, maskOut, maskIn);
      await redrawCanvas(page);
    }
    expect(await linkedInputs()).toEqual({ mask: [LOAD_IMAGE, "mask"], image: [LOAD_IMAGE, "image"] });
    expect(errors).toEqual([]);
    await context.close();
  });

  it("groups the selected nodes with Ctrl+G and keeps the group across a reload", async () => {
    const { context, page, errors } = await openEditor();
    await selectByTitle(page, RESIZE);
    await selectByTitle(page, GROW_MASK, ["Shift"]);
    expect(await page.evaluate(() => (window as any).maskflow.canvas.selectedItems.size)).toBe(2);
    await page.keyboard.press("Control+g");
    const doc = await documentOf(page);
    expect(doc.ui?.groups).toHaveLength(1);
    const [gx, gy, gw, gh] = doc.ui!.groups![0].bounding;
    // The group encloses both selected nodes (titles included) and not Load Image.
    const boxes = await page.evaluate(
      (ids) =>
        ids.map((id) => {
          const node = (window as any).maskflow.nodeByDocumentId(id);
          return [node.pos[0], node.pos[1] - 30, node.pos[0] + node.size[0], node.pos[1] + node.size[1]];
        }),
      [RESIZE, GROW_MASK, LOAD_IMAGE],
    );
    for (const [left, top, right, bottom] of boxes.slice(0, 2)) {
      expect(left).toBeGreaterThanOrEqual(gx);
      expect(top).toBeGreaterThanOrEqual(gy);
      expect(right).toBeLessThanOrEqual(gx + gw);
      expect(bottom).toBeLessThanOrEqual(gy + gh);
    }
    expect(boxes[2][2]).toBeLessThan(gx);

    // A reload brings the same graph back, group included (the page keeps it as it unloads).
    await page.reload();
    await page.waitForFunction(() => (window as any).maskflow?.nodes().length === 3, null, { timeout: 15_000 });
    await page.evaluate(() => (window as any).maskflow.ready);
    const after = await documentOf(page);
    expect(after.ui?.groups).toEqual(doc.ui?.groups);
    expect(after.nodes).toEqual(doc.nodes);
    expect(errors).toEqual([]);
    await context.close();
  });

  it("removes the selected node with the Delete key", async () => {
    const { context, page, errors } = await openEditor();
    await selectByTitle(page, GROW_MASK);
    await page.keyboard.press("Delete");
    await page.waitForFunction((id) => !(window as any).maskflow.nodeByDocumentId(id), GROW_MASK, { timeout: 5_000 });
    expect(await nodeIdsOf(page)).toEqual([LOAD_IMAGE, RESIZE]);
    expect(errors).toEqual([]);
    await context.close();
  });
});
