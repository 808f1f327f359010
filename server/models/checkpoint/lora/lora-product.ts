/**
 * target += scale · (up · down) in float32: the arithmetic of applying one LoRA module to one weight. A full-size
 * LoRA is hundreds of these (LCM-LoRA: rank 64 on all 278 attention, feed-forward and convolution weights of
 * SD 1.5's UNet, about 55 G multiply-adds), so the product runs in a small WebAssembly SIMD kernel (four float32
 * lanes, two output rows per pass); `addLoraProductScalar` is the same loop in plain JavaScript, used where
 * WebAssembly SIMD is missing and as the tests' reference.
 *
 * Both walk i-k-j: for each output row i, Σ_k up[i, k] · down[k, ·] is accumulated into a row buffer (reading
 * down's rows contiguously), then scale times that row is added to the target's row.
 */

/**
 * target[i·columns + j] += scale · Σ_k up[i·rank + k] · down[k·columns + j], for `out` rows: plain JavaScript,
 * four rank terms per pass over the row buffer.
 */
export function addLoraProductScalar(
  target: Float32Array,
  up: Float32Array,
  down: Float32Array,
  out: number,
  rank: number,
  columns: number,
  scale: number,
): void {
  const factor = Math.fround(scale);
  const row = new Float32Array(columns);
  for (let i = 0; i < out; i++) {
    row.fill(0);
    const upRow = i * rank;
    let k = 0;
    for (; k + 4 <= rank; k += 4) {
      const a0 = up[upRow + k];
      const a1 = up[upRow + k + 1];
      const a2 = up[upRow + k + 2];
      const a3 = up[upRow + k + 3];
      const d0 = k * columns;
      const d1 = d0 + columns;
      const d2 = d1 + columns;
      const d3 = d2 + columns;
      for (let j = 0; j < columns; j++) row[j] += a0 * down[d0 + j] + a1 * down[d1 + j] + a2 * down[d2 + j] + a3 * down[d3 + j];
    }
    for (; k < rank; k++) {
      const a = up[upRow + k];
      const d = k * columns;
      for (let j = 0; j < columns; j++) row[j] += a * down[d + j];
    }
    const base = i * columns;
    for (let j = 0; j < columns; j++) target[base + j] += Math.fround(factor * row[j]);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The WebAssembly kernel, assembled here (a few hundred bytes; no toolchain needed)

const uleb = (value: number): number[] => {
  const out: number[] = [];
  let rest = value >>> 0;
  do {
    let byte = rest & 0x7f;
    rest >>>= 7;
    if (rest !== 0) byte |= 0x80;
    out.push(byte);
  } while (rest !== 0);
  return out;
};

const sleb = (value: number): number[] => {
  const out: number[] = [];
  let rest = value | 0;
  for (;;) {
    const byte = rest & 0x7f;
    rest >>= 7;
    if ((rest === 0 && (byte & 0x40) === 0) || (rest === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
};

const vector = (items: readonly number[][]): number[] => [...uleb(items.length), ...items.flat()];
const section = (id: number, body: readonly number[]): number[] => [id, ...uleb(body.length), ...body];
const text = (value: string): number[] => [...uleb(value.length), ...Array.from(value, (c) => c.charCodeAt(0))];

// Instructions
const get = (local: number) => [0x20, local];
const set = (local: number) => [0x21, local];
const tee = (local: number) => [0x22, local];
const i32 = (value: number) => [0x41, ...sleb(value)];
const ADD = [0x6a];
const MUL = [0x6c];
const SHL = [0x74];
const LT_U = [0x49];
const GT_U = [0x4b];
const GE_U = [0x4f];
const F32_LOAD = (offset: number) => [0x2a, 2, ...uleb(offset)];
const V128_LOAD = [0xfd, 0x00, 4, 0];
const V128_STORE = [0xfd, 0x0b, 4, 0];
const V128_ZERO = [0xfd, 0x0c, ...new Array<number>(16).fill(0)];
const F32X4_SPLAT = [0xfd, 0x13];
const F32X4_ADD = [0xfd, 0xe4, 0x01];
const F32X4_MUL = [0xfd, 0xe6, 0x01];
const BLOCK = [0x02, 0x40];
const LOOP = [0x03, 0x40];
const END = [0x0b];
const BR = (depth: number) => [0x0c, depth];
const BR_IF = (depth: number) => [0x0d, depth];

/**
 * rows(up, down, row, rank, stride): for `rows` (1 or 2) output rows, row[r][j] = Σ_k up[r·rank + k] · down[k·stride + j]
 * over j < stride (a multiple of 4); pointers are byte addresses, row r's buffer at row + r·stride·4.
 */
function rowsFunction(rows: 1 | 2): number[] {
  // params: 0 up, 1 down, 2 row, 3 rank, 4 stride; i32 locals: 5 k, 6 j, 7 bytes, 8 d, 9 p, 10 up2, 11 row2;
  // v128 locals: 12–15 the first row's up values, 16–19 the second's, 20–23 four lanes of down.
  const [UP, DOWN, ROW, RANK, STRIDE, K, J, BYTES, D, P, UP2, ROW2] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
  const A = [12, 13, 14, 15];
  const B = [16, 17, 18, 19];
  const X = [20, 21, 22, 23];
  const upRows = rows === 2 ? [UP, UP2] : [UP];
  const rowBuffers = rows === 2 ? [ROW, ROW2] : [ROW];
  const splats = rows === 2 ? [A, B] : [A];
  const nextJ = [...get(J), ...i32(16), ...ADD, ...set(J), ...get(J), ...get(BYTES), ...LT_U, ...BR_IF(0)];
  // row[r][j..j+4] += Σ_n splats[r][n] · X[n]  (n < terms)
  const accumulate = (terms: number) =>
    rowBuffers.flatMap((buffer, r) => {
      const products: number[] = [...get(splats[r][0]), ...get(X[0]), ...F32X4_MUL];
      for (let n = 1; n < terms; n++) products.push(...get(splats[r][n]), ...get(X[n]), ...F32X4_MUL, ...F32X4_ADD);
      return [...get(buffer), ...get(J), ...ADD, ...tee(P), ...get(P), ...V128_LOAD, ...products, ...F32X4_ADD, ...V128_STORE];
    });
  // The k-th (and following) up values of each row, splatted.
  const loadSplats = (terms: number) =>
    upRows.flatMap((pointer, r) =>
      Array.from({ length: terms }, (_, n) => [...get(pointer), ...get(K), ...i32(2), ...SHL, ...ADD, ...F32_LOAD(n * 4), ...F32X4_SPLAT, ...set(splats[r][n])]).flat(),
    );
  // X[n] = down[(k + n)·stride + j ..]
  const loadDown = (terms: number) => {
    const out: number[] = [...get(D), ...get(J), ...ADD, ...set(P)];
    for (let n = 0; n < terms; n++) out.push(...get(P), ...(n === 0 ? [] : [...get(BYTES), ...i32(n), ...MUL, ...ADD]), ...V128_LOAD, ...set(X[n]));
    return out;
  };
  const pass = (terms: number, exitTest: number[]) => [
    ...BLOCK, ...LOOP,
    ...exitTest, ...BR_IF(1),
    ...loadSplats(terms),
    ...get(DOWN), ...get(K), ...get(BYTES), ...MUL, ...ADD, ...set(D),
    ...i32(0), ...set(J),
    ...LOOP, ...loadDown(terms), ...accumulate(terms), ...nextJ, ...END,
    ...get(K), ...i32(terms), ...ADD, ...set(K), ...BR(0),
    ...END, ...END,
  ];
  const body = [
    ...get(STRIDE), ...i32(2), ...SHL, ...set(BYTES),
    ...get(UP), ...get(RANK), ...i32(2), ...SHL, ...ADD, ...set(UP2),
    ...get(ROW), ...get(BYTES), ...ADD, ...set(ROW2),
    // Zero the row buffers.
    ...i32(0), ...set(J),
    ...LOOP, ...rowBuffers.flatMap((buffer) => [...get(buffer), ...get(J), ...ADD, ...V128_ZERO, ...V128_STORE]), ...nextJ, ...END,
    ...i32(0), ...set(K),
    // Four rank terms per pass while four remain (k + 4 > rank ends it), then one at a time.
    ...pass(4, [...get(K), ...i32(4), ...ADD, ...get(RANK), ...GT_U]),
    ...pass(1, [...get(K), ...get(RANK), ...GE_U]),
    ...END,
  ];
  const locals = vector([[7, 0x7f], [12, 0x7b]]);
  return [...uleb(locals.length + body.length), ...locals, ...body];
}

function kernelModule(): Uint8Array<ArrayBuffer> {
  const I32 = 0x7f;
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vector([[0x60, ...vector([[I32], [I32], [I32], [I32], [I32]]), 0]])),
    ...section(3, vector([[0], [0]])),
    ...section(5, vector([[0x00, 1]])),
    ...section(7, vector([[...text("memory"), 0x02, 0], [...text("row1"), 0x00, 0], [...text("row2"), 0x00, 1]])),
    ...section(10, [...uleb(2), ...rowsFunction(1), ...rowsFunction(2)]),
  ]);
}

type RowsFunction = (up: number, down: number, row: number, rank: number, stride: number) => void;

interface Kernel {
  readonly memory: WebAssembly.Memory;
  readonly row1: RowsFunction;
  readonly row2: RowsFunction;
}

let kernel: Kernel | null | undefined;

/** The SIMD kernel, or null where this runtime has no WebAssembly SIMD. */
function simdKernel(): Kernel | null {
  if (kernel === undefined) {
    try {
      const exports = new WebAssembly.Instance(new WebAssembly.Module(kernelModule())).exports;
      kernel = { memory: exports.memory as WebAssembly.Memory, row1: exports.row1 as RowsFunction, row2: exports.row2 as RowsFunction };
    } catch {
      kernel = null;
    }
  }
  return kernel;
}

/** Whether the WebAssembly SIMD kernel runs here (else the JavaScript loop does the same arithmetic). */
export function loraSimdAvailable(): boolean {
  return simdKernel() !== null;
}

/** target[i·columns + j] += scale · (up · down)[i, j]: up [out, rank], down [rank, columns], row-major float32. */
export function addLoraProduct(
  target: Float32Array,
  up: Float32Array,
  down: Float32Array,
  out: number,
  rank: number,
  columns: number,
  scale: number,
): void {
  const simd = simdKernel();
  if (!simd) {
    addLoraProductScalar(target, up, down, out, rank, columns, scale);
    return;
  }
  // Memory: up, then down with rows padded to a multiple of 4 floats, then two row buffers.
  const stride = (columns + 3) & ~3;
  const downAt = out * rank;
  const rowAt = downAt + rank * stride;
  const bytes = (rowAt + 2 * stride) * 4;
  const have = simd.memory.buffer.byteLength;
  if (bytes > have) simd.memory.grow(Math.ceil((bytes - have) / 65536));
  const heap = new Float32Array(simd.memory.buffer);
  heap.set(up.subarray(0, out * rank), 0);
  if (stride === columns) heap.set(down.subarray(0, rank * columns), downAt);
  else for (let k = 0; k < rank; k++) heap.set(down.subarray(k * columns, (k + 1) * columns), downAt + k * stride);
  const factor = Math.fround(scale);
  let i = 0;
  for (; i < out; ) {
    const rows = out - i >= 2 ? 2 : 1;
    (rows === 2 ? simd.row2 : simd.row1)(i * rank * 4, downAt * 4, rowAt * 4, rank, stride);
    for (let r = 0; r < rows; r++) {
      const base = (i + r) * columns;
      const row = rowAt + r * stride;
      for (let j = 0; j < columns; j++) target[base + j] += Math.fround(factor * heap[row + j]);
    }
    i += rows;
  }
}
