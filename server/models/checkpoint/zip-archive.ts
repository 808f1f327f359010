/**
 * The zip central directory of a torch checkpoint, read from the file's tail and the entries' local headers only:
 * torch.save writes a zip of uncompressed entries (the pickle and one entry per storage), and a model's zip is
 * gigabytes, so the reader never reads more than the directory and each entry's 30-byte header.
 * zip64 is read too, since torch writes it for archives or entries past 4 GB.
 */
import type { FileHandle } from "node:fs/promises";
import { CheckpointError } from "./checkpoint-tensor.ts";
import { readFileRange } from "./tensor-bytes.ts";

export interface ZipEntry {
  readonly name: string;
  /** 0 = stored (the only method read); 8 = deflate, and so on. */
  readonly method: number;
  readonly compressedSize: number;
  readonly uncompressedSize: number;
  /** Absolute file offset of the entry's first data byte (after its local header, name and extra field). */
  readonly dataOffset: number;
}

const END_OF_DIRECTORY = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_END_OF_DIRECTORY = 0x06064b50;
const DIRECTORY_ENTRY = 0x02014b50;
const LOCAL_HEADER = 0x04034b50;
const END_OF_DIRECTORY_BYTES = 22;
const MAX_COMMENT_BYTES = 0xffff;
/** ~1,100 entries of ~100 bytes make a model's directory; a larger one is a damaged file, not something to allocate. */
const MAX_DIRECTORY_BYTES = 64 * 1024 * 1024;

const METHOD_NAMES: Record<number, string> = { 8: "deflate", 9: "deflate64", 12: "bzip2", 14: "lzma", 93: "zstd", 95: "xz" };

function uint64(file: string, view: DataView, offset: number, what: string): number {
  const value = view.getBigUint64(offset, true);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new CheckpointError(file, `zip ${what} ${value} is past any real file size`);
  return Number(value);
}

interface Directory {
  offset: number;
  size: number;
  entryCount: number;
}

/** Finds the end-of-central-directory record (and its zip64 twin when present) in the file's last 64 KiB. */
async function findDirectory(file: string, handle: FileHandle, fileSize: number): Promise<Directory> {
  const tailLength = Math.min(fileSize, END_OF_DIRECTORY_BYTES + MAX_COMMENT_BYTES);
  const tailStart = fileSize - tailLength;
  const tail = await readFileRange(file, handle, tailStart, tailLength);
  const view = new DataView(tail.buffer);
  // Search backwards, and accept a signature only where its comment ends the file (a comment may hold the bytes).
  let end = -1;
  for (let at = tailLength - END_OF_DIRECTORY_BYTES; at >= 0; at--) {
    if (view.getUint32(at, true) === END_OF_DIRECTORY && at + END_OF_DIRECTORY_BYTES + view.getUint16(at + 20, true) === tailLength) {
      end = at;
      break;
    }
  }
  if (end < 0) {
    throw new CheckpointError(file, "not a complete zip archive: no end-of-central-directory record (a truncated download?)");
  }
  if (view.getUint16(end + 4, true) !== 0 || view.getUint16(end + 6, true) !== 0) {
    throw new CheckpointError(file, "is a multi-part (spanned) zip archive, which torch never writes");
  }
  const directory: Directory = {
    entryCount: view.getUint16(end + 10, true),
    size: view.getUint32(end + 12, true),
    offset: view.getUint32(end + 16, true),
  };
  const locator = end - 20;
  if (locator >= 0 && view.getUint32(locator, true) === ZIP64_LOCATOR) {
    const recordOffset = uint64(file, view, locator + 8, "zip64 directory offset");
    if (recordOffset + 56 > fileSize) throw new CheckpointError(file, "truncated: the zip64 end-of-central-directory record is past the end of the file");
    const record = await readFileRange(file, handle, recordOffset, 56);
    const recordView = new DataView(record.buffer);
    if (recordView.getUint32(0, true) !== ZIP64_END_OF_DIRECTORY) {
      throw new CheckpointError(file, "damaged zip archive: the zip64 locator does not point at a zip64 end-of-central-directory record");
    }
    directory.entryCount = uint64(file, recordView, 32, "entry count");
    directory.size = uint64(file, recordView, 40, "directory size");
    directory.offset = uint64(file, recordView, 48, "directory offset");
  }
  if (directory.size > MAX_DIRECTORY_BYTES) {
    throw new CheckpointError(file, `zip central directory of ${directory.size} bytes is over the ${MAX_DIRECTORY_BYTES}-byte limit: a damaged file`);
  }
  if (directory.offset + directory.size > fileSize) {
    throw new CheckpointError(
      file,
      `truncated: the zip directory needs ${directory.offset + directory.size} bytes but the file has ${fileSize}`,
    );
  }
  return directory;
}

/** The zip64 extra field (id 1) holds, in this order, exactly those sizes/offset whose 32-bit fields are 0xFFFFFFFF. */
function applyZip64Extra(
  file: string,
  name: string,
  extra: DataView,
  fields: { uncompressedSize: number; compressedSize: number; localOffset: number },
): void {
  for (let at = 0; at + 4 <= extra.byteLength; ) {
    const id = extra.getUint16(at, true);
    const length = extra.getUint16(at + 2, true);
    if (id === 0x0001) {
      let field = at + 4;
      const take = (what: string): number => {
        if (field + 8 > at + 4 + length || field + 8 > extra.byteLength) {
          throw new CheckpointError(file, `zip entry "${name}" has a zip64 extra field too short for its ${what}`);
        }
        const value = uint64(file, extra, field, `${what} of "${name}"`);
        field += 8;
        return value;
      };
      if (fields.uncompressedSize === 0xffffffff) fields.uncompressedSize = take("size");
      if (fields.compressedSize === 0xffffffff) fields.compressedSize = take("compressed size");
      if (fields.localOffset === 0xffffffff) fields.localOffset = take("offset");
      return;
    }
    at += 4 + length;
  }
}

/** Reads an entry's local header to find where its data starts (the local name and extra lengths differ from the directory's). */
async function dataOffsetOf(file: string, handle: FileHandle, fileSize: number, name: string, localOffset: number): Promise<number> {
  if (localOffset + 30 > fileSize) throw new CheckpointError(file, `truncated: zip entry "${name}" starts past the end of the file`);
  const header = new DataView((await readFileRange(file, handle, localOffset, 30)).buffer);
  if (header.getUint32(0, true) !== LOCAL_HEADER) {
    throw new CheckpointError(file, `damaged zip archive: entry "${name}" has no local header at offset ${localOffset}`);
  }
  return localOffset + 30 + header.getUint16(26, true) + header.getUint16(28, true);
}

/**
 * Lists a zip's entries by name with where their data lies. Refuses what a torch checkpoint never is: compressed
 * or encrypted entries, duplicate names, entries whose data runs past the end of the file.
 */
export async function readZipEntries(file: string, handle: FileHandle, fileSize: number): Promise<Map<string, ZipEntry>> {
  const directory = await findDirectory(file, handle, fileSize);
  const bytes = await readFileRange(file, handle, directory.offset, directory.size);
  const view = new DataView(bytes.buffer);
  const decoder = new TextDecoder();
  const entries = new Map<string, ZipEntry>();
  let at = 0;
  while (at < directory.size) {
    if (at + 46 > directory.size || view.getUint32(at, true) !== DIRECTORY_ENTRY) {
      throw new CheckpointError(file, `damaged zip archive: central directory entry ${entries.size + 1} is malformed`);
    }
    const flags = view.getUint16(at + 8, true);
    const method = view.getUint16(at + 10, true);
    const nameLength = view.getUint16(at + 28, true);
    const extraLength = view.getUint16(at + 30, true);
    const commentLength = view.getUint16(at + 32, true);
    const next = at + 46 + nameLength + extraLength + commentLength;
    if (next > directory.size) throw new CheckpointError(file, `damaged zip archive: central directory entry ${entries.size + 1} runs past the directory`);
    const name = decoder.decode(bytes.subarray(at + 46, at + 46 + nameLength));
    const fields = {
      compressedSize: view.getUint32(at + 20, true),
      uncompressedSize: view.getUint32(at + 24, true),
      localOffset: view.getUint32(at + 42, true),
    };
    applyZip64Extra(file, name, new DataView(bytes.buffer, at + 46 + nameLength, extraLength), fields);
    if (flags & 0x1) throw new CheckpointError(file, `zip entry "${name}" is encrypted; torch.save never encrypts`);
    if (method !== 0) {
      throw new CheckpointError(
        file,
        `zip entry "${name}" is compressed (${METHOD_NAMES[method] ?? `method ${method}`}); torch.save stores entries uncompressed, so re-save it with torch.save or convert it to .safetensors`,
      );
    }
    if (fields.compressedSize !== fields.uncompressedSize) {
      throw new CheckpointError(file, `damaged zip archive: stored entry "${name}" has ${fields.compressedSize} bytes stored for ${fields.uncompressedSize}`);
    }
    if (entries.has(name)) throw new CheckpointError(file, `zip entry "${name}" appears twice, so which one torch would read is unclear`);
    const dataOffset = await dataOffsetOf(file, handle, fileSize, name, fields.localOffset);
    if (dataOffset + fields.compressedSize > fileSize) {
      throw new CheckpointError(
        file,
        `truncated: zip entry "${name}" needs ${dataOffset + fields.compressedSize} bytes but the file has ${fileSize}`,
      );
    }
    entries.set(name, {
      name,
      method,
      compressedSize: fields.compressedSize,
      uncompressedSize: fields.uncompressedSize,
      dataOffset,
    });
    at = next;
  }
  if (entries.size !== directory.entryCount) {
    throw new CheckpointError(
      file,
      `damaged zip archive: the directory lists ${entries.size} entries but its end record counts ${directory.entryCount}`,
    );
  }
  return entries;
}
