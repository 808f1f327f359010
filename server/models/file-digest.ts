import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";

/**
 * Both digests the hub can vouch for: sha256 (the LFS oid of large files) and the git blob sha1
 * (the oid of small files stored in git itself). The git one needs the size up front.
 */
export class FileDigest {
  readonly #sha256: Hash = createHash("sha256");
  readonly #gitSha1: Hash;
  #bytes = 0;

  constructor(expectedSize: number) {
    this.#gitSha1 = createHash("sha1").update(`blob ${expectedSize}\0`);
  }

  update(chunk: Uint8Array): void {
    this.#sha256.update(chunk);
    this.#gitSha1.update(chunk);
    this.#bytes += chunk.byteLength;
  }

  get bytes(): number {
    return this.#bytes;
  }

  digest(): { sha256: string; gitSha1: string } {
    return { sha256: this.#sha256.digest("hex"), gitSha1: this.#gitSha1.digest("hex") };
  }

  /** Feeds a file already on disk (the kept part of a resumed download). */
  async updateFromFile(filePath: string): Promise<void> {
    for await (const chunk of createReadStream(filePath)) this.update(chunk as Buffer);
  }
}

export async function sha256OfFile(filePath: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(filePath)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}
