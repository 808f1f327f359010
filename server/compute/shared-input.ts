/**
 * A task's input is copied for the worker, because a node's output may be cached and used again. Cloned
 * with the message, a 4096² picture (48 MB) would be copied in one go on the main thread (tens of ms);
 * copied here into a SharedArrayBuffer a slice per turn of the event loop, the worker reads it in place.
 * Workers only read their inputs (every task returns new arrays), so sharing the copy is safe.
 */

/** Smaller views travel with the message: copying them takes well under a millisecond. */
const SHARE_FROM_BYTES = 1 << 20;
/** Bytes copied per turn of the event loop: about a millisecond's work. */
const SLICE_BYTES = 1 << 20;
/** Task inputs hold their pixels at most two levels down ({ image: { data } }); deeper is not searched. */
const MAX_DEPTH = 2;

/** The input with every large Uint8Array replaced by an equal one over a SharedArrayBuffer. */
export async function shareLargeArrays<T>(value: T, depth = 0): Promise<T> {
  if (value instanceof Uint8Array) {
    return (value.byteLength >= SHARE_FROM_BYTES && !(value.buffer instanceof SharedArrayBuffer) ? await sharedCopy(value) : value) as T;
  }
  if (depth >= MAX_DEPTH || value === null || typeof value !== "object" || Object.getPrototypeOf(value) !== Object.prototype) {
    return value;
  }
  const entries = await Promise.all(Object.entries(value).map(async ([key, item]) => [key, await shareLargeArrays(item, depth + 1)] as const));
  return Object.fromEntries(entries) as T;
}

async function sharedCopy(source: Uint8Array): Promise<Uint8Array> {
  const target = new Uint8Array(new SharedArrayBuffer(source.byteLength));
  for (let offset = 0; offset < source.byteLength; offset += SLICE_BYTES) {
    if (offset > 0) await new Promise((resolve) => setImmediate(resolve));
    target.set(source.subarray(offset, offset + SLICE_BYTES), offset);
  }
  return target;
}
