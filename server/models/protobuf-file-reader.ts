import { type FileHandle, open } from "node:fs/promises";

/** One field of a protobuf message: its number, wire type and where its value lies in the file. */
export interface ProtobufField {
  readonly number: number;
  readonly wireType: 0 | 1 | 2 | 5;
  /** Byte range of the value: the payload for length-delimited fields, the encoded bytes otherwise. */
  readonly start: number;
  readonly end: number;
  /** The decoded value of a varint field (exact up to 2^53), 0 for other wire types. */
  readonly varint: number;
}

export class ProtobufFormatError extends Error {}

const WINDOW_BYTES = 16 * 1024;
const MAX_VARINT_BYTES = 10;

/**
 * Walks the fields of protobuf messages in a file without reading the file whole: a multi-gigabyte ONNX
 * model is mostly tensor bytes, which a caller looking for metadata skips by their length prefix.
 */
export class ProtobufFileReader {
  readonly size: number;
  readonly #handle: FileHandle;
  #window = Buffer.alloc(WINDOW_BYTES);
  #windowStart = 0;
  #windowLength = 0;

  private constructor(handle: FileHandle, size: number) {
    this.#handle = handle;
    this.size = size;
  }

  static async open(file: string): Promise<ProtobufFileReader> {
    const handle = await open(file, "r");
    try {
      return new ProtobufFileReader(handle, (await handle.stat()).size);
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  async close(): Promise<void> {
    await this.#handle.close();
  }

  /** The fields of the message stored in [start, end), in file order. */
  async *fields(start: number, end: number): AsyncGenerator<ProtobufField> {
    let position = start;
    while (position < end) {
      const key = await this.#varint(position, end);
      const number = Math.floor(key.value / 8);
      const wireType = key.value % 8;
      position = key.next;
      if (number === 0) throw new ProtobufFormatError(`field number 0 at byte ${position}`);
      let field: ProtobufField;
      if (wireType === 0) {
        const value = await this.#varint(position, end);
        field = { number, wireType, start: position, end: value.next, varint: value.value };
      } else if (wireType === 2) {
        const length = await this.#varint(position, end);
        field = { number, wireType, start: length.next, end: length.next + length.value, varint: 0 };
      } else if (wireType === 1 || wireType === 5) {
        field = { number, wireType, start: position, end: position + (wireType === 1 ? 8 : 4), varint: 0 };
      } else {
        throw new ProtobufFormatError(`unsupported wire type ${wireType} at byte ${position}`);
      }
      if (field.end > end) throw new ProtobufFormatError(`field ${number} at byte ${field.start} runs past the end of its message (byte ${end})`);
      yield field;
      position = field.end;
    }
  }

  /** The varints packed in a length-delimited field (repeated int64 dims, for instance). */
  async packedVarints(field: ProtobufField): Promise<number[]> {
    const values: number[] = [];
    for (let position = field.start; position < field.end; ) {
      const value = await this.#varint(position, field.end);
      values.push(value.value);
      position = value.next;
    }
    return values;
  }

  /** A length-delimited field's payload as UTF-8 (names and keys: small). */
  async text(field: ProtobufField): Promise<string> {
    const length = field.end - field.start;
    const bytes = Buffer.alloc(length);
    const { bytesRead } = await this.#handle.read(bytes, 0, length, field.start);
    if (bytesRead !== length) throw new ProtobufFormatError(`file ends inside the string at byte ${field.start}`);
    return bytes.toString("utf8");
  }

  async #varint(position: number, end: number): Promise<{ value: number; next: number }> {
    await this.#load(position, Math.min(MAX_VARINT_BYTES, end - position));
    let value = 0;
    for (let i = 0; i < MAX_VARINT_BYTES && position + i < end; i++) {
      const offset = position + i - this.#windowStart;
      if (offset >= this.#windowLength) break;
      const byte = this.#window[offset];
      value += (byte & 0x7f) * 2 ** (7 * i);
      if ((byte & 0x80) === 0) return { value, next: position + i + 1 };
    }
    throw new ProtobufFormatError(`truncated or overlong varint at byte ${position}`);
  }

  /** Makes the window hold [position, position + length) where the file has those bytes. */
  async #load(position: number, length: number): Promise<void> {
    if (position >= this.#windowStart && position + length <= this.#windowStart + this.#windowLength) return;
    const { bytesRead } = await this.#handle.read(this.#window, 0, WINDOW_BYTES, position);
    this.#windowStart = position;
    this.#windowLength = bytesRead;
  }
}
