// Turns the string a Segmind-style request gives for an image or mask (an http(s) URL, a data
// URL or bare base64) into checked image bytes.
import { checkPicturePixels, PixelLimitError } from "../../nodes/image/pixel-limit.ts";
import { ImageInputError } from "./image-input-error.ts";
import { detectImageType, quoteLeadingBytes, type ImageMediaType } from "./image-signature.ts";
import { DEFAULT_MAX_IMAGE_BYTES, fetchImageFromUrl, type SafeFetchOptions } from "./safe-fetch.ts";

export interface DecodedImageInput {
  readonly bytes: Uint8Array;
  readonly contentType: ImageMediaType;
  readonly source: "url" | "data-url" | "base64";
}

export type DecodeImageInputOptions = Omit<SafeFetchOptions, "field">;

const DATA_URL = /^data:([^;,]*)(;[^,]*)?,/i;
const BASE64_TEXT = /^[A-Za-z0-9+/]*={0,2}$/;
const BASE64URL_TEXT = /^[A-Za-z0-9_-]*={0,2}$/;

/**
 * The image a request field gives, refused (ImageInputError) when it cannot be had, is not a JPEG,
 * PNG or WebP, or declares more pixels than MASKFLOW_MAX_PIXELS (read from its header: nothing is
 * decoded here).
 */
export async function decodeImageInput(
  value: string,
  field: string,
  options: DecodeImageInputOptions = {},
): Promise<DecodedImageInput> {
  const decoded = await readImageInput(value, field, options);
  try {
    await checkPicturePixels(decoded.bytes, field);
  } catch (error) {
    if (error instanceof PixelLimitError) throw new ImageInputError(field, "too-many-pixels", error.message.slice(field.length + 2));
    throw error;
  }
  return decoded;
}

async function readImageInput(value: string, field: string, options: DecodeImageInputOptions): Promise<DecodedImageInput> {
  const text = value.trim();
  if (/^https?:\/\//i.test(text)) {
    const fetched = await fetchImageFromUrl(text, { ...options, field });
    return { bytes: fetched.bytes, contentType: fetched.contentType, source: "url" };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) {
    throw new ImageInputError(field, "bad-url", `only http and https URLs are fetched; got ${text.split(":")[0]}:`);
  }
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_IMAGE_BYTES;
  const dataUrl = DATA_URL.exec(text);
  if (dataUrl) {
    const [prefix, mediaType, parameters = ""] = dataUrl;
    if (!/;base64$/i.test(parameters)) {
      throw new ImageInputError(field, "bad-base64", "a data URL must be base64-encoded (data:image/png;base64,...)");
    }
    if (mediaType && !/^image\//i.test(mediaType)) {
      throw new ImageInputError(field, "not-an-image", `the data URL says ${mediaType}, not an image`);
    }
    return checked(decodeBase64(text.slice(prefix.length), field, maxBytes), field, "data-url");
  }
  return checked(decodeBase64(text, field, maxBytes), field, "base64");
}

function decodeBase64(text: string, field: string, maxBytes: number): Uint8Array {
  const payload = text.replace(/\s+/g, "");
  if (payload.length === 0) throw new ImageInputError(field, "bad-base64", "is empty");
  // Buffer.from(…, "base64") skips characters it does not know; check first so garbage is named.
  const standard = BASE64_TEXT.test(payload);
  if (!standard && !BASE64URL_TEXT.test(payload)) {
    throw new ImageInputError(field, "bad-base64", "is neither an http(s) URL nor valid base64");
  }
  if (Math.floor((payload.length * 3) / 4) > maxBytes + 2) {
    throw new ImageInputError(field, "too-large", `the image is larger than the ${maxBytes} byte limit`);
  }
  return new Uint8Array(Buffer.from(payload, standard ? "base64" : "base64url"));
}

function checked(bytes: Uint8Array, field: string, source: DecodedImageInput["source"]): DecodedImageInput {
  const contentType = detectImageType(bytes);
  if (contentType === undefined) {
    throw new ImageInputError(field, "not-an-image", `the decoded bytes are not a JPEG, PNG or WebP image; they begin ${quoteLeadingBytes(bytes, 32)}`);
  }
  return { bytes, contentType, source };
}
