// Which IP addresses a server-side fetch of a user-supplied URL may connect to. A URL given to
// the Segmind-compatible endpoint must not reach this machine, its network or the cloud metadata
// service (SSRF), so every non-public range is refused, including IPv4 addresses wrapped in IPv6.
import { isIPv4, isIPv6 } from "node:net";

interface Range {
  readonly prefix: readonly number[];
  readonly bits: number;
  readonly why: string;
}

function v4(text: string, bits: number, why: string): Range {
  return { prefix: text.split(".").map(Number), bits, why };
}

const IPV4_BLOCKED: readonly Range[] = [
  v4("0.0.0.0", 8, "a 'this network' address (0.0.0.0/8)"),
  v4("10.0.0.0", 8, "a private address (10.0.0.0/8)"),
  v4("100.64.0.0", 10, "a carrier-grade NAT address (100.64.0.0/10)"),
  v4("127.0.0.0", 8, "a loopback address (127.0.0.0/8)"),
  v4("169.254.0.0", 16, "a link-local address (169.254.0.0/16, includes the cloud metadata service)"),
  v4("172.16.0.0", 12, "a private address (172.16.0.0/12)"),
  v4("192.0.0.0", 24, "an IETF protocol address (192.0.0.0/24)"),
  v4("192.0.2.0", 24, "a documentation address (192.0.2.0/24)"),
  v4("192.168.0.0", 16, "a private address (192.168.0.0/16)"),
  v4("198.18.0.0", 15, "a benchmarking address (198.18.0.0/15)"),
  v4("198.51.100.0", 24, "a documentation address (198.51.100.0/24)"),
  v4("203.0.113.0", 24, "a documentation address (203.0.113.0/24)"),
  v4("224.0.0.0", 4, "a multicast address (224.0.0.0/4)"),
  v4("240.0.0.0", 4, "a reserved or broadcast address (240.0.0.0/4)"),
];

function v6(prefix: number[], bits: number, why: string): Range {
  return { prefix, bits, why };
}

const IPV6_BLOCKED: readonly Range[] = [
  v6([0xfc], 7, "a unique-local IPv6 address (fc00::/7)"),
  v6([0xfe, 0x80], 10, "a link-local IPv6 address (fe80::/10)"),
  v6([0xfe, 0xc0], 10, "a site-local IPv6 address (fec0::/10)"),
  v6([0xff], 8, "a multicast IPv6 address (ff00::/8)"),
  v6([0x20, 0x01, 0x0d, 0xb8], 32, "a documentation IPv6 address (2001:db8::/32)"),
];

/** The bytes of an IPv4 or IPv6 address (4 or 16), or undefined when the text is neither. */
export function parseIpAddress(text: string): Uint8Array | undefined {
  const address = text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text;
  if (isIPv4(address)) return Uint8Array.from(address.split(".").map(Number));
  if (!isIPv6(address)) return undefined;
  return parseIpv6(address.split("%")[0]);
}

function parseIpv6(address: string): Uint8Array {
  let text = address;
  const tail: number[] = [];
  const lastColon = text.lastIndexOf(":");
  const last = text.slice(lastColon + 1);
  if (last.includes(".")) {
    // An embedded dotted quad (::ffff:127.0.0.1) fills the last two groups.
    tail.push(...last.split(".").map(Number));
    text = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const [head, rest] = text.includes("::") ? text.split("::") : [text, undefined];
  const headGroups = head ? head.split(":") : [];
  const restGroups = rest ? rest.split(":") : [];
  const zeros = rest === undefined ? [] : new Array<string>(8 - headGroups.length - restGroups.length).fill("0");
  const groups = [...headGroups, ...zeros, ...restGroups];
  const bytes = new Uint8Array(16);
  groups.forEach((group, index) => {
    const value = parseInt(group, 16);
    bytes[index * 2] = value >> 8;
    bytes[index * 2 + 1] = value & 0xff;
  });
  if (tail.length === 4) bytes.set(tail, 12);
  return bytes;
}

function inRange(bytes: Uint8Array, range: Range): boolean {
  let bits = range.bits;
  for (let index = 0; bits > 0; index += 1, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((bytes[index] & mask) !== ((range.prefix[index] ?? 0) & mask)) return false;
  }
  return true;
}

function isZero(bytes: Uint8Array, start: number, end: number): boolean {
  return bytes.subarray(start, end).every((byte) => byte === 0);
}

/** The IPv4 address an IPv6 address carries (mapped, compatible, NAT64, 6to4), if any. */
function embeddedIpv4(bytes: Uint8Array): Uint8Array | undefined {
  if (isZero(bytes, 0, 10) && bytes[10] === 0xff && bytes[11] === 0xff) return bytes.slice(12); // ::ffff:a.b.c.d
  if (isZero(bytes, 0, 12)) return bytes.slice(12); // ::a.b.c.d (deprecated "compatible")
  const nat64 = [0x00, 0x64, 0xff, 0x9b];
  if (nat64.every((byte, index) => bytes[index] === byte) && isZero(bytes, 4, 12)) return bytes.slice(12); // 64:ff9b::/96
  if (bytes[0] === 0x20 && bytes[1] === 0x02) return bytes.slice(2, 6); // 2002::/16 (6to4)
  return undefined;
}

/**
 * Why an address is not a public one (loopback, private, link-local, CGNAT, multicast…), or
 * undefined when it is public. Text that is not an IP address is refused too.
 */
export function whyAddressIsNotPublic(address: string): string | undefined {
  const bytes = parseIpAddress(address);
  if (bytes === undefined) return "not an IP address";
  if (bytes.length === 4) return IPV4_BLOCKED.find((range) => inRange(bytes, range))?.why;
  if (isZero(bytes, 0, 16)) return "the unspecified IPv6 address (::)";
  if (isZero(bytes, 0, 15) && bytes[15] === 1) return "the IPv6 loopback address (::1)";
  const inner = embeddedIpv4(bytes);
  if (inner !== undefined) {
    const why = IPV4_BLOCKED.find((range) => inRange(inner, range))?.why;
    return why === undefined ? undefined : `${why}, wrapped in IPv6`;
  }
  return IPV6_BLOCKED.find((range) => inRange(bytes, range))?.why;
}

/** Canonical text of an address, so that "::ffff:127.0.0.1" and "[::FFFF:7f00:1]" compare equal. */
export function canonicalIpAddress(address: string): string | undefined {
  const bytes = parseIpAddress(address);
  if (bytes === undefined) return undefined;
  if (bytes.length === 4) return bytes.join(".");
  const groups: string[] = [];
  for (let index = 0; index < 16; index += 2) groups.push(((bytes[index] << 8) | bytes[index + 1]).toString(16));
  return groups.join(":");
}
