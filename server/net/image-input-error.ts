/** Why an image input (a URL, a data URL or base64) was refused. */
export type ImageInputProblem =
  | "bad-url"
  | "blocked-address"
  | "dns-failed"
  | "too-many-redirects"
  | "http-status"
  | "too-large"
  | "too-many-pixels"
  | "timeout"
  | "network"
  | "not-an-image"
  | "bad-base64";

/**
 * An image input the server will not use. `field` names the request field ("image", "mask")
 * so the message can point at it; `status` is what an HTTP endpoint should answer (the caller
 * sent something unusable: 400).
 */
export class ImageInputError extends Error {
  readonly status = 400;

  constructor(
    readonly field: string,
    readonly problem: ImageInputProblem,
    message: string,
  ) {
    super(`${field}: ${message}`);
    this.name = "ImageInputError";
  }
}
