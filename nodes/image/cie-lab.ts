/**
 * sRGB bytes ↔ CIE L*a*b* (D65 white, the sRGB primaries of IEC 61966-2-1), and the CIE76 colour difference
 * ΔE*ab, the Euclidean distance in Lab: about 2.3 is a just-noticeable difference. Lab is near enough to
 * perceptually even that matching means and spreads in it moves colour the way the eye sees it.
 */
import type { RgbImage } from "../socket-types.ts";

/** sRGB byte → linear light, once per byte value. */
const LINEAR = Float64Array.from({ length: 256 }, (_, byte) => {
  const v = byte / 255;
  return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
});

const WHITE_X = 0.95047;
const WHITE_Z = 1.08883;
const EPSILON = 216 / 24389;
const KAPPA = 24389 / 27;

function labF(t: number): number {
  return t > EPSILON ? Math.cbrt(t) : (KAPPA * t + 16) / 116;
}

function labFInverse(f: number): number {
  const cube = f * f * f;
  return cube > EPSILON ? cube : (116 * f - 16) / KAPPA;
}

/** One pixel's Lab, written to out[at], out[at + 1], out[at + 2]. */
export function rgbToLab(r: number, g: number, b: number, out: Float32Array | Float64Array, at: number): void {
  const lr = LINEAR[r];
  const lg = LINEAR[g];
  const lb = LINEAR[b];
  const x = (0.4124564 * lr + 0.3575761 * lg + 0.1804375 * lb) / WHITE_X;
  const y = 0.2126729 * lr + 0.7151522 * lg + 0.072175 * lb;
  const z = (0.0193339 * lr + 0.119192 * lg + 0.9503041 * lb) / WHITE_Z;
  const fy = labF(y);
  out[at] = 116 * fy - 16;
  out[at + 1] = 500 * (labF(x) - fy);
  out[at + 2] = 200 * (fy - labF(z));
}

function toByte(linear: number): number {
  const v = linear <= 0.0031308 ? 12.92 * linear : 1.055 * Math.max(0, linear) ** (1 / 2.4) - 0.055;
  return Math.min(255, Math.max(0, Math.round(v * 255)));
}

/** Lab → sRGB bytes at out[at …], clipped to the gamut. */
export function labToRgb(l: number, a: number, b: number, out: Uint8Array, at: number): void {
  const fy = (l + 16) / 116;
  const x = labFInverse(fy + a / 500) * WHITE_X;
  const y = labFInverse(fy);
  const z = labFInverse(fy - b / 200) * WHITE_Z;
  out[at] = toByte(3.2404542 * x - 1.5371385 * y - 0.4985314 * z);
  out[at + 1] = toByte(-0.969266 * x + 1.8760108 * y + 0.041556 * z);
  out[at + 2] = toByte(0.0556434 * x - 0.2040259 * y + 1.0572252 * z);
}

/** The whole picture in Lab, three floats per pixel. */
export function imageToLab(image: RgbImage): Float32Array {
  const lab = new Float32Array(image.width * image.height * 3);
  const data = image.data;
  for (let i = 0; i < data.length; i += 3) rgbToLab(data[i], data[i + 1], data[i + 2], lab, i);
  return lab;
}

/** CIE76 ΔE*ab between the Lab colours at lab1[i …] and lab2[j …]. */
export function deltaE76(lab1: Float32Array, i: number, lab2: Float32Array, j: number): number {
  return Math.hypot(lab1[i] - lab2[j], lab1[i + 1] - lab2[j + 1], lab1[i + 2] - lab2[j + 2]);
}
