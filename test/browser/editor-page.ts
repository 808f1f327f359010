/**
 * Opening the editor in a fresh browser profile, reading the graph it would save, finding nodes, sockets and
 * widgets on the canvas and working them with the mouse, and a probe that records what the graph canvas actually
 * painted (progress text, preview frames), so a test asserts what a user saw rather than internal state.
 */
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";

export interface EditorPage {
  readonly context: BrowserContext;
  readonly page: Page;
  /** Uncaught page errors, collected as they happen. */
  readonly errors: string[];
}

/** The system Chromium, headless, kept off the network beyond the test server. */
export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

/** Waits until the editor's start-up finished: node types known, a graph drawn, `maskflow.ready` settled. */
export async function waitForStartUp(page: Page): Promise<void> {
  await page.waitForFunction(() => (window as any).maskflow?.schemas?.length > 0 && (window as any).maskflow.nodes().length > 0, null, { timeout: 15_000 });
  await page.evaluate(() => (window as any).maskflow.ready);
}

/**
 * A fresh profile (empty localStorage, so a first visit) on the editor, once start-up finished. `prepare` sets up the
 * context before the page opens (a routeWebSocket, say).
 */
export async function openEditor(browser: Browser, url: string, prepare?: (context: BrowserContext) => Promise<void>): Promise<EditorPage> {
  const context = await browser.newContext({ viewport: { width: 1400, height: 860 } });
  // Never reach outside the test server.
  await context.route(/^(?!https?:\/\/127\.0\.0\.1|ws:\/\/127\.0\.0\.1|blob:|data:)/, (route) => route.abort());
  await prepare?.(context);
  const page = await context.newPage();
  const errors: string[] = [];
  page.on("pageerror", (error) => errors.push(error.message));
  await page.goto(url);
  await waitForStartUp(page);
  return { context, page, errors };
}

/** One event of the server's WebSocket, as the page receives it. */
export interface ServerEvent {
  type: string;
  data: { jobId?: string; node?: string; label?: string; value?: number; max?: number; message?: string };
}

/** openEditor, with every server event the page receives recorded in `events` (listening from before the socket opens). */
export async function openEditorRecording(browser: Browser, url: string): Promise<EditorPage & { events: ServerEvent[] }> {
  const editor = await openEditor(browser, url);
  const events: ServerEvent[] = [];
  editor.page.on("websocket", (socket) =>
    socket.on("framereceived", ({ payload }) => {
      if (typeof payload === "string") events.push(JSON.parse(payload));
    }),
  );
  await editor.page.reload();
  await waitForStartUp(editor.page);
  return { ...editor, events };
}

// ---------------------------------------------------------------------------------------------------------------
// The graph as the page would save it, and where things are on the canvas

export interface DocumentNode {
  id: string;
  type: string;
  inputs: Record<string, unknown>;
  ui?: { pos?: [number, number] };
}
export interface SavedDocument {
  nodes: DocumentNode[];
  ui?: { groups?: Array<{ title: string; bounding: [number, number, number, number] }> };
}

/** The workflow document the page would save now. */
export function documentOf(page: Page): Promise<SavedDocument> {
  return page.evaluate(() => (window as any).maskflow.toDocument());
}

export function nodeOf(doc: SavedDocument, id: string): DocumentNode {
  const node = doc.nodes.find((candidate) => candidate.id === id);
  if (!node) throw new Error(`the document has no node ${id}`);
  return node;
}

/** Page coordinates of an input (or output) socket of a node, by slot name. */
export function pointOnSocket(page: Page, id: string, side: "input" | "output", name: string): Promise<[number, number]> {
  return page.evaluate(
    ([nodeId, which, slotName]) => {
      const app = (window as any).maskflow;
      const node = app.nodeByDocumentId(nodeId);
      const slots: Array<{ name: string }> = which === "input" ? node.inputs : node.outputs;
      const index = slots.findIndex((slot) => slot.name === slotName);
      if (index < 0) throw new Error(`node ${nodeId} has no ${which} ${slotName}`);
      return app.toClient(node.getConnectionPos(which === "input", index));
    },
    [id, side, name] as const,
  );
}

/** Drags with the left button from one page point to another in small steps, as a hand does. */
export async function drag(page: Page, from: [number, number], to: [number, number]): Promise<void> {
  await page.mouse.move(from[0], from[1]);
  await page.mouse.down();
  await page.mouse.move(to[0], to[1], { steps: 12 });
  await page.mouse.up();
}

/** The entries of the combo menu a click on a node's widget opens (LiteGraph's context menu), left open. */
export async function comboEntries(page: Page, nodeId: string, widget: string): Promise<string[]> {
  const [x, y] = await pointInWidget(page, nodeId, widget);
  await page.mouse.click(x, y);
  const entries = page.locator(".litecontextmenu .litemenu-entry");
  await entries.first().waitFor({ timeout: 10_000 });
  return entries.allTextContents();
}

/** Closes an open combo menu (Escape, or a click on an empty corner where Escape did not). */
export async function closeMenu(page: Page): Promise<void> {
  await page.keyboard.press("Escape");
  await page.locator(".litecontextmenu").waitFor({ state: "detached", timeout: 5000 }).catch(() => page.mouse.click(5, 5));
}

/** [x, y, width, height] in graph coordinates. */
export type Box = [number, number, number, number];

/** Every node's box on the canvas (title bar included) and the visible part of the graph, in graph coordinates. */
export function nodeLayout(page: Page): Promise<{ boxes: Record<string, Box>; view: Box }> {
  return page.evaluate(() => {
    const app = (window as any).maskflow;
    const boxes: Record<string, [number, number, number, number]> = {};
    for (const node of app.graph._nodes) boxes[String(node.id)] = [node.pos[0], node.pos[1] - 30, node.size[0], node.size[1] + 30];
    const [left, top] = app.canvas.ds.convertCanvasToOffset([0, 0]);
    const [right, bottom] = app.canvas.ds.convertCanvasToOffset([app.canvasElement.width, app.canvasElement.height]);
    return { boxes, view: [left, top, right - left, bottom - top] as [number, number, number, number] };
  });
}

/** Whether two boxes do not overlap. */
export const boxesApart = (a: Box, b: Box) => a[0] + a[2] <= b[0] || b[0] + b[2] <= a[0] || a[1] + a[3] <= b[1] || b[1] + b[3] <= a[1];
/** Whether a box lies wholly inside a view. */
export const boxInside = (box: Box, view: Box) => box[0] >= view[0] && box[1] >= view[1] && box[0] + box[2] <= view[0] + view[2] && box[1] + box[3] <= view[1] + view[3];

/** Page coordinates of the middle of a node's widget (where a click opens its prompt or menu). */
export async function pointInWidget(page: Page, nodeId: string, widgetName: string): Promise<[number, number]> {
  return page.evaluate(
    ([id, name]) => {
      const app = (window as any).maskflow;
      const node = app.nodeByDocumentId(id);
      const widget = node.widgets.find((w: { name: string }) => w.name === name);
      if (!widget) throw new Error(`node ${id} has no widget ${name}`);
      return app.toClient([node.pos[0] + node.size[0] / 2, node.pos[1] + widget.y + 10]);
    },
    [nodeId, widgetName] as const,
  );
}

interface PaintLog {
  progress: Array<[number, number]>;
  /** Every text drawn, newest last (the oldest dropped past a few thousand). */
  texts: string[];
  previews: string[];
  previewDraws: number;
}

/**
 * Records from now on every text (and every "step / total" among them) and every preview frame (a blob: image, which only
 * the step previews are) drawn on any 2D canvas of the page.
 */
export async function installPaintProbe(page: Page): Promise<void> {
  await page.evaluate(() => {
    const log: PaintLog = { progress: [], texts: [], previews: [], previewDraws: 0 };
    (window as unknown as { __paintLog: PaintLog }).__paintLog = log;
    const proto = CanvasRenderingContext2D.prototype;
    const fillText = proto.fillText;
    proto.fillText = function (this: CanvasRenderingContext2D, text: string, ...rest: [number, number, number?]) {
      const match = /^(\d+) \/ (\d+)$/.exec(String(text));
      if (match) log.progress.push([Number(match[1]), Number(match[2])]);
      log.texts.push(String(text));
      if (log.texts.length > 5000) log.texts.splice(0, 1000);
      return fillText.call(this, text, ...rest);
    } as typeof proto.fillText;
    const drawImage = proto.drawImage;
    proto.drawImage = function (this: CanvasRenderingContext2D, ...args: unknown[]) {
      const source = args[0];
      if (source instanceof HTMLImageElement && source.src.startsWith("blob:")) {
        log.previewDraws++;
        if (!log.previews.includes(source.src)) log.previews.push(source.src);
      }
      return (drawImage as (...a: unknown[]) => void).apply(this, args);
    } as typeof proto.drawImage;
  });
}

/** The [step, total] pairs painted since the probe was installed. */
export async function paintedProgress(page: Page): Promise<Array<[number, number]>> {
  return page.evaluate(() => (window as unknown as { __paintLog: PaintLog }).__paintLog.progress);
}

/** The texts painted on any canvas since the probe was installed. */
export async function paintedTexts(page: Page): Promise<string[]> {
  return page.evaluate(() => (window as unknown as { __paintLog: PaintLog }).__paintLog.texts);
}

/** How many distinct preview frames were painted since the probe was installed. */
export async function paintedPreviewCount(page: Page): Promise<number> {
  return page.evaluate(() => (window as unknown as { __paintLog: PaintLog }).__paintLog.previews.length);
}

/** How many times a preview frame was drawn (counting redraws) since the probe was installed. */
export async function paintedPreviewDraws(page: Page): Promise<number> {
  return page.evaluate(() => (window as unknown as { __paintLog: PaintLog }).__paintLog.previewDraws);
}

/** Makes LiteGraph redraw the whole canvas and waits until two frames have been painted. */
export async function redrawCanvas(page: Page): Promise<void> {
  await page.evaluate(
    () =>
      new Promise<void>((resolve) => {
        (window as any).maskflow.canvas.setDirty(true, true);
        requestAnimationFrame(() => requestAnimationFrame(() => resolve()));
      }),
  );
}
