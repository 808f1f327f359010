/**
 * The torch .ckpt reader (torch.save's zip format, torch >= 1.6): `<archive>/data.pkl` is a pickle describing the
 * state dict, each tensor a view (offset, size, stride) of a storage whose bytes are the uncompressed entry
 * `<archive>/data/<key>`. The pickle is read with the restricted unpickler (nothing in it is run); each tensor's
 * bytes are read from its storage entry when asked.
 */
import { open, type FileHandle } from "node:fs/promises";
import { CheckpointFileHandle } from "./checkpoint-file-handle.ts";
import { CheckpointError, type CheckpointDtype, type CheckpointFile, type CheckpointTensor } from "./checkpoint-tensor.ts";
import { PickleDict, PickleTensor, unpickle, type PickleValue } from "./restricted-unpickler.ts";
import { DTYPE_BYTES, decodeToFloat32, elementCount, readFileRange } from "./tensor-bytes.ts";
import { readZipEntries, type ZipEntry } from "./zip-archive.ts";

/** A model's data.pkl is ~200 KB (a few MB for a full training checkpoint); anything this large is not a checkpoint. */
export const MAX_PICKLE_BYTES = 64 * 1024 * 1024;

/** A broadcast (stride-0) view may repeat its storage, as CLIP's expanded position_ids do, up to this many elements. */
const MAX_BROADCAST_ELEMENTS = 1 << 24;

const LEGACY_FORMAT =
  "is a legacy torch file (the pre-1.6 format) or a plain pickle, which is not read: re-save it with torch >= 1.6 " +
  "(torch.save(torch.load(path), new_path), in a trusted environment) or convert it to .safetensors";

function isRowMajor(shape: readonly number[], stride: readonly number[]): boolean {
  let expected = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] !== 1 && stride[d] !== expected) return false;
    expected *= shape[d];
  }
  return true;
}

/** Copies a strided view out of `span` (which starts at the view's first element) into row-major order. */
function gather(span: Float32Array, shape: readonly number[], stride: readonly number[], count: number): Float32Array {
  const out = new Float32Array(count);
  const rank = shape.length;
  const innerSize = shape[rank - 1];
  const innerStride = stride[rank - 1];
  const index = new Array<number>(rank).fill(0);
  let base = 0;
  for (let written = 0; written < count; written += innerSize) {
    for (let k = 0; k < innerSize; k++) out[written + k] = span[base + k * innerStride];
    for (let d = rank - 2; d >= 0; d--) {
      index[d]++;
      base += stride[d];
      if (index[d] < shape[d]) break;
      base -= stride[d] * shape[d];
      index[d] = 0;
    }
  }
  return out;
}

class StorageViewTensor implements CheckpointTensor {
  readonly dtype: CheckpointDtype;
  readonly shape: readonly number[];

  constructor(
    private readonly owner: CkptFile,
    readonly name: string,
    private readonly tensor: PickleTensor,
    private readonly storageEntry: ZipEntry,
    private readonly count: number,
    /** Elements from the first to the last one the view touches (equal to count when contiguous). */
    private readonly spanLength: number,
  ) {
    this.dtype = tensor.storage.dtype;
    this.shape = tensor.shape;
  }

  async readFloat32(): Promise<Float32Array> {
    if (this.count === 0) return new Float32Array(0);
    const elementBytes = DTYPE_BYTES[this.dtype];
    const bytes = await this.owner.readRange(
      this.name,
      this.storageEntry.dataOffset + this.tensor.storageOffset * elementBytes,
      this.spanLength * elementBytes,
    );
    const span = decodeToFloat32(this.dtype, bytes);
    return isRowMajor(this.tensor.shape, this.tensor.stride) ? span : gather(span, this.tensor.shape, this.tensor.stride, this.count);
  }
}

class CkptFile extends CheckpointFileHandle implements CheckpointFile {
  readonly format = "ckpt";
  readonly tensors = new Map<string, CheckpointTensor>();
  readonly metadata: Readonly<Record<string, string>> = {};
}

/** The one `<archive>/data.pkl` of a torch zip, and the archive folder name every other entry is under. */
function findPickle(file: string, entries: Map<string, ZipEntry>): { prefix: string; pickle: ZipEntry } {
  const pickles = [...entries.values()].filter((entry) => /^[^/]+\/data\.pkl$/.test(entry.name));
  if (pickles.length === 0) {
    throw new CheckpointError(file, "is a zip without an <archive>/data.pkl entry, so not a torch checkpoint");
  }
  if (pickles.length > 1) {
    throw new CheckpointError(file, `is a zip with ${pickles.length} data.pkl entries (${pickles.map((entry) => entry.name).join(", ")}); a torch checkpoint has one`);
  }
  const pickle = pickles[0];
  if (pickle.uncompressedSize > MAX_PICKLE_BYTES) {
    throw new CheckpointError(
      file,
      `${pickle.name} is ${pickle.uncompressedSize} bytes, over the ${MAX_PICKLE_BYTES}-byte limit for a checkpoint's pickle (a model's is well under a few MB)`,
    );
  }
  return { prefix: pickle.name.slice(0, -"/data.pkl".length), pickle };
}

/** torch >= 2.1 records the byte order of the storages; files before that are little-endian. */
async function checkByteOrder(file: string, handle: FileHandle, entries: Map<string, ZipEntry>, prefix: string): Promise<void> {
  const entry = entries.get(`${prefix}/byteorder`);
  if (!entry) return;
  const order = entry.uncompressedSize > 16 ? "" : new TextDecoder().decode(await readFileRange(file, handle, entry.dataOffset, entry.uncompressedSize)).trim();
  if (order === "little") return;
  if (order === "big") {
    throw new CheckpointError(file, "was saved on a big-endian machine (byteorder \"big\"); re-save it on a little-endian one or convert it to .safetensors");
  }
  throw new CheckpointError(file, `has an unknown byteorder record "${order.slice(0, 16)}"`);
}

/** The state dict: the top-level dict, or its "state_dict" entry (PyTorch Lightning checkpoints). */
function findStateDict(file: string, root: PickleValue): PickleDict {
  if (!(root instanceof PickleDict)) {
    throw new CheckpointError(file, `holds ${Array.isArray(root) ? "a list" : root instanceof PickleTensor ? "a single tensor" : "something"}, not a dict of tensors`);
  }
  const nested = root.entries.get("state_dict");
  return nested instanceof PickleDict ? nested : root;
}

function describeTensor(
  file: string,
  owner: CkptFile,
  name: string,
  tensor: PickleTensor,
  entries: Map<string, ZipEntry>,
  prefix: string,
): StorageViewTensor {
  const { storage, shape, stride, storageOffset } = tensor;
  const entryName = `${prefix}/data/${storage.key}`;
  const entry = entries.get(entryName);
  if (!entry) throw new CheckpointError(file, `tensor "${name}" lives in storage "${storage.key}", but the zip has no entry ${entryName}`);
  const elementBytes = DTYPE_BYTES[storage.dtype];
  if (entry.uncompressedSize < storage.elementCount * elementBytes) {
    throw new CheckpointError(
      file,
      `truncated: storage ${entryName} (${storage.dtype}) needs ${storage.elementCount * elementBytes} bytes but has ${entry.uncompressedSize}`,
    );
  }
  const count = elementCount(file, name, shape);
  if (count > storage.elementCount && count > MAX_BROADCAST_ELEMENTS) {
    // A stride-0 view can name billions of elements over a handful of bytes; reading it would allocate them all.
    throw new CheckpointError(
      file,
      `tensor "${name}" repeats the ${storage.elementCount} elements of its storage as ${count} (a broadcast view); no model weight is one`,
    );
  }
  let last = 0;
  for (let d = 0; d < shape.length; d++) last += (shape[d] - 1) * stride[d];
  const spanLength = count === 0 ? 0 : last + 1;
  if (count > 0 && storageOffset + spanLength > storage.elementCount) {
    throw new CheckpointError(
      file,
      `tensor "${name}" (shape [${shape.join(", ")}], stride [${stride.join(", ")}], offset ${storageOffset}) reaches past its storage of ${storage.elementCount} elements`,
    );
  }
  return new StorageViewTensor(owner, name, tensor, entry, count, spanLength);
}

/** Opens a torch .ckpt/.pt (zip format): reads its directory and pickle now, each tensor's bytes when it is read. */
export async function openCkpt(file: string): Promise<CheckpointFile> {
  const handle = await open(file, "r");
  try {
    const { size } = await handle.stat();
    const magic = await readFileRange(file, handle, 0, Math.min(size, 4));
    if (magic[0] === 0x80) throw new CheckpointError(file, LEGACY_FORMAT);
    if (size < 4 || magic[0] !== 0x50 || magic[1] !== 0x4b || magic[2] !== 0x03 || magic[3] !== 0x04) {
      throw new CheckpointError(file, "is not a torch checkpoint: it does not start like a zip archive (torch.save's format since 1.6)");
    }
    const entries = await readZipEntries(file, handle, size);
    const { prefix, pickle } = findPickle(file, entries);
    await checkByteOrder(file, handle, entries, prefix);
    const root = unpickle(await readFileRange(file, handle, pickle.dataOffset, pickle.uncompressedSize), file, pickle.name);
    const stateDict = findStateDict(file, root);

    const checkpoint = new CkptFile(file, handle);
    for (const [key, value] of stateDict.entries) {
      // Non-tensor entries (a step count, Lightning's callbacks) and non-string keys are not weights.
      if (typeof key !== "string" || !(value instanceof PickleTensor)) continue;
      checkpoint.tensors.set(key, describeTensor(file, checkpoint, key, value, entries, prefix));
    }
    if (checkpoint.tensors.size === 0) throw new CheckpointError(file, "holds no tensors (its state dict is empty or holds other things)");
    return checkpoint;
  } catch (error) {
    await handle.close();
    throw error;
  }
}
