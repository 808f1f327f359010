import { createHash, randomBytes } from "node:crypto";
import http from "node:http";
import { readdir, readFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { ensureTinyModels } from "../fixtures/make-tiny-models.ts";

/** A file of the fake repository; `lfs` files are listed with an LFS sha256 oid and served through a redirect. */
export interface FakeRepoFile {
  readonly path: string;
  readonly content: Buffer;
  readonly lfs: boolean;
}

export interface FakeHubRequest {
  readonly method: string;
  readonly path: string;
  readonly range: string | undefined;
  readonly authorization: string | undefined;
  status: number;
  /** Body bytes actually written for this request. */
  bytesSent: number;
}

/** Switches a test flips to make the hub misbehave; each applies to the requests made after it is set. */
export interface FakeHubBehaviour {
  /** Answer 401 unless `Authorization: Bearer <token>` is sent. */
  requireToken?: string;
  /** Close the connection after this many body bytes of `path`, `times` times (then serve normally). */
  dropConnection?: { path: string; afterBytes: number; times: number };
  /** Serve these files with one byte flipped. */
  corrupt?: Set<string>;
  /** Serve a file with one byte flipped this many times (then intact): a transfer corrupted once. */
  corruptTimes?: Map<string, number>;
  /** Send file bodies at about this many bytes a second (a slow link, so progress can be watched). */
  bytesPerSecond?: number;
  /** Answer 404 to everything (an unknown repository). */
  notFound?: boolean;
  /** Answer 500 to this many requests, then behave. */
  failures?: number;
  /** Ignore Range headers and always send the whole file with 200. */
  ignoreRange?: boolean;
  /** Tree API page size, to exercise Link pagination. */
  pageSize?: number;
}

export interface FakeHub {
  readonly url: string;
  readonly repo: string;
  readonly revision: string;
  readonly commit: string;
  readonly files: readonly FakeRepoFile[];
  readonly behaviour: FakeHubBehaviour;
  readonly requests: FakeHubRequest[];
  /** Requests for one file's content (redirect hops excluded). */
  contentRequests(filePath: string): FakeHubRequest[];
  close(): Promise<void>;
}

export const FAKE_REPO = "fake-org/tiny-inpaint-onnx";
/** The UNet's external data: big enough that a download can be dropped and resumed mid-file. */
export const BIG_FILE = "unet/model.onnx_data";
export const BIG_FILE_SIZE = 3 * 1024 * 1024 + 12345;
/** Files of the fake repository that `models pull` must not fetch (docs, safety checker, PyTorch weights). */
export const SKIPPED_BY_PULL = [".gitattributes", "README.md", "safety_checker/model.onnx", "unet/diffusion_pytorch_model.safetensors"] as const;

function gitBlobSha1(content: Buffer): string {
  return createHash("sha1").update(`blob ${content.length}\0`).update(content).digest("hex");
}

function sha256(content: Buffer): string {
  return createHash("sha256").update(content).digest("hex");
}

/**
 * The fake repository: the tiny fp32 model (a real optimum-layout export, so a pulled copy opens in the engine)
 * plus files `models pull` must skip. The UNet's external data is padded with random bytes to BIG_FILE_SIZE:
 * the graph reads only its first bytes (offsets and lengths are recorded), and the resume tests need a file
 * that arrives in many chunks.
 */
export async function makeFakeRepoFiles(): Promise<FakeRepoFile[]> {
  const { fp32 } = await ensureTinyModels();
  const entries = await readdir(fp32, { withFileTypes: true, recursive: true });
  const files: FakeRepoFile[] = [];
  for (const entry of entries.filter((e) => e.isFile() && !e.name.startsWith("."))) {
    const filePath = path.relative(fp32, path.join(entry.parentPath, entry.name)).split(path.sep).join("/");
    let content = await readFile(path.join(fp32, filePath));
    if (filePath === BIG_FILE) content = Buffer.concat([content, randomBytes(BIG_FILE_SIZE - content.length)]);
    files.push({ path: filePath, content, lfs: /\.(onnx|onnx_data|pb)$/.test(filePath) });
  }
  if (!files.some((file) => file.path === BIG_FILE)) throw new Error(`the tiny model at ${fp32} has no ${BIG_FILE}`);
  const decoys: FakeRepoFile[] = [
    { path: ".gitattributes", content: Buffer.from("*.onnx filter=lfs\n"), lfs: false },
    { path: "README.md", content: Buffer.from("# tiny\n"), lfs: false },
    { path: "safety_checker/model.onnx", content: randomBytes(50_000), lfs: true },
    { path: "unet/diffusion_pytorch_model.safetensors", content: randomBytes(50_000), lfs: true },
  ];
  return [...decoys, ...files].sort((a, b) => a.path.localeCompare(b.path));
}

/**
 * A Hugging Face hub stand-in on 127.0.0.1: /api/models/{repo}/revision/{rev}, the paged tree API and
 * /{repo}/resolve/{rev}/{path} (LFS files via a 302 to a CDN path, as the real hub does), with Range support.
 */
export async function startFakeHub(
  options: { files?: FakeRepoFile[]; behaviour?: FakeHubBehaviour; repo?: string; commit?: string } = {},
): Promise<FakeHub> {
  const files = options.files ?? (await makeFakeRepoFiles());
  const byPath = new Map(files.map((file) => [file.path, file]));
  const bySha = new Map(files.filter((f) => f.lfs).map((file) => [sha256(file.content), file]));
  const behaviour: FakeHubBehaviour = options.behaviour ?? {};
  const requests: FakeHubRequest[] = [];
  // The commit "main" points at; a test of a pinned revision passes the commit it pins.
  const commit = options.commit ?? createHash("sha1").update("fake commit").digest("hex");
  const revisions = new Set(["main", commit]);
  // Any repository id: a test of the default model serves the tiny model under the default's name.
  const repo = options.repo ?? FAKE_REPO;
  const repoPrefix = `/${repo}/resolve/`;
  const apiPrefix = `/api/models/${repo}/`;

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const record: FakeHubRequest = {
      method: req.method ?? "GET",
      path: decodeURIComponent(url.pathname),
      range: req.headers.range,
      authorization: req.headers.authorization,
      status: 0,
      bytesSent: 0,
    };
    requests.push(record);
    const answer = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      record.status = status;
      res.writeHead(status, { "content-type": "application/json", ...headers });
      res.end(JSON.stringify(body));
    };

    if (behaviour.failures && behaviour.failures > 0) {
      behaviour.failures--;
      return answer(500, { error: "Internal Error" });
    }
    if (behaviour.requireToken && req.headers.authorization !== `Bearer ${behaviour.requireToken}`) {
      return answer(401, { error: "Invalid credentials" }, { "x-error-code": "RepoNotFound" });
    }
    if (behaviour.notFound) return answer(404, { error: "Repository not found" }, { "x-error-code": "RepoNotFound" });

    if (record.path.startsWith(apiPrefix)) {
      const [kind, revision] = record.path.slice(apiPrefix.length).split("/");
      if (!revisions.has(revision)) return answer(404, { error: "Invalid rev id" }, { "x-error-code": "RevisionNotFound" });
      if (kind === "revision") return answer(200, { id: repo, sha: commit, siblings: files.map((f) => ({ rfilename: f.path })) });
      if (kind === "tree" && url.searchParams.get("recursive") === "true") {
        const offset = Number(url.searchParams.get("cursor") ?? 0);
        const pageSize = behaviour.pageSize ?? files.length;
        const page = files.slice(offset, offset + pageSize).map((file) => ({
          type: "file",
          path: file.path,
          size: file.content.length,
          oid: gitBlobSha1(file.content),
          ...(file.lfs ? { lfs: { oid: sha256(file.content), size: file.content.length, pointerSize: 130 } } : {}),
        }));
        const next: Record<string, string> = offset + pageSize < files.length ? { link: `<${apiPrefix}tree/${revision}?recursive=true&cursor=${offset + pageSize}>; rel="next"` } : {};
        return answer(200, page, next);
      }
      return answer(404, { error: "no such API" });
    }

    let file: FakeRepoFile | undefined;
    if (record.path.startsWith(repoPrefix)) {
      const rest = record.path.slice(repoPrefix.length);
      const slash = rest.indexOf("/");
      const revision = rest.slice(0, slash);
      if (!revisions.has(revision)) return answer(404, { error: "Invalid rev id" }, { "x-error-code": "RevisionNotFound" });
      file = byPath.get(rest.slice(slash + 1));
      if (!file) return answer(404, { error: "Entry not found" }, { "x-error-code": "EntryNotFound" });
      if (file.lfs) {
        record.status = 302;
        res.writeHead(302, { location: `/cdn/${sha256(file.content)}` });
        return res.end();
      }
    } else if (record.path.startsWith("/cdn/")) {
      file = bySha.get(record.path.slice("/cdn/".length));
    }
    if (!file) return answer(404, { error: "not found" });
    serveContent(file, req, res, record);
  });

  function serveContent(file: FakeRepoFile, req: http.IncomingMessage, res: http.ServerResponse, record: FakeHubRequest): void {
    let content = file.content;
    const corruptLeft = behaviour.corruptTimes?.get(file.path) ?? 0;
    if (corruptLeft > 0) behaviour.corruptTimes!.set(file.path, corruptLeft - 1);
    if (behaviour.corrupt?.has(file.path) || corruptLeft > 0) {
      content = Buffer.from(content);
      content[Math.floor(content.length / 2)] ^= 0xff;
    }
    const match = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    const start = match && !behaviour.ignoreRange ? Number(match[1]) : 0;
    if (start >= content.length && content.length > 0) {
      record.status = 416;
      res.writeHead(416, { "content-range": `bytes */${content.length}` });
      return void res.end();
    }
    const body = content.subarray(start);
    record.status = match && !behaviour.ignoreRange ? 206 : 200;
    res.writeHead(record.status, {
      "content-type": "application/octet-stream",
      "content-length": String(body.length),
      "accept-ranges": "bytes",
      ...(record.status === 206 ? { "content-range": `bytes ${start}-${content.length - 1}/${content.length}` } : {}),
    });
    const drop = behaviour.dropConnection;
    const dropAt = drop && drop.path === file.path && drop.times > 0 ? drop.afterBytes : Infinity;
    if (dropAt !== Infinity) drop!.times--;
    // Written in chunks so the client sees a streamed body, and so a drop lands mid-file.
    const chunkSize = 64 * 1024;
    // A slow link: one chunk, then a pause as long as the chunk takes at that rate (read per chunk: tests change it mid-file).
    const pauseMs = () => (behaviour.bytesPerSecond ? (chunkSize * 1000) / behaviour.bytesPerSecond : 0);
    let offset = 0;
    let paused = -1;
    const writeMore = (): void => {
      while (offset < body.length) {
        if (res.destroyed) return;
        if (pauseMs() && offset > 0 && paused !== offset) {
          paused = offset;
          setTimeout(writeMore, pauseMs());
          return;
        }
        const end = Math.min(offset + chunkSize, body.length, dropAt);
        if (end <= offset) {
          res.socket?.destroy();
          return;
        }
        const ok = res.write(body.subarray(offset, end));
        record.bytesSent += end - offset;
        offset = end;
        if (offset >= dropAt) {
          // Let the bytes already written reach the client before the connection goes away.
          res.once("drain", () => res.socket?.destroy());
          if (ok) setImmediate(() => res.socket?.destroy());
          return;
        }
        if (!ok) return void res.once("drain", writeMore);
      }
      res.end();
    };
    writeMore();
  }

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    repo,
    revision: "main",
    commit,
    files,
    behaviour,
    requests,
    contentRequests: (filePath) => {
      const file = byPath.get(filePath);
      const cdn = file?.lfs ? `/cdn/${sha256(file.content)}` : undefined;
      return requests.filter((r) => r.path === cdn || (!file?.lfs && r.path.endsWith(`/resolve/main/${filePath}`)) || (!file?.lfs && r.path.endsWith(`/resolve/${commit}/${filePath}`)));
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}
