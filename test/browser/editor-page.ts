/**
 * Opening the editor in a fresh browser profile, finding widgets on the canvas, and a probe that
 * records what the graph canvas actually painted (progress text, preview frames), so a test
 * asserts what a user saw rather than internal state.
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

/** A fresh profile (empty localStorage, so a first visit) on the editor, once start-up finished. */
export async function openEditor(browser: Browser, url: string): Promise<EditorPage> {
  const context = await browser.newContext({ viewport: { width: 1400, height: 860 } });
  // Never reach outside the test server.
  await context.route(/^(?!https?:\/\/127\.0\.0\.1|ws:\/\/127\.0\.0\.1|blob:|data:)/, (route) => route.abort());
  const page = await context.newPage();
  const errors: string[] = [];
  page.on("pageerror", (error) => errors.push(error.message));
  await page.goto(url);
  await page.waitForFunction(() => (window as any).maskflow?.schemas?.length > 0 && (window as any).maskflow.nodes().length > 0, null, { timeout: 15_000 });
  await page.evaluate(() => (window as any).maskflow.ready);
  return { context, page, errors };
}

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
