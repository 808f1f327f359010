/**
 * Which requests may reach the server at all, before any key or body is looked at. Two attacks from a web
 * page the user visits: a cross-site request (a form or fetch to http://127.0.0.1:8188, which needs no
 * preflight), refused because its `Origin` is not the server's own; and DNS rebinding (a page whose own name
 * now points at 127.0.0.1 and so may read the answers), refused because its `Host` is not a name this server
 * answers to. Requests without an Origin (curl, programs) pass on to the key check.
 */
import type { IncomingHttpHeaders } from "node:http";
import type { RequestHandler } from "express";
import { HttpError } from "./http-error.ts";

const HOST_HEADER = /^(\[[0-9a-f:.]+\]|[^\s:[\]/@]+)(?::(\d{1,5}))?$/i;
const HOST_NAME = /^(\[[0-9a-f:.]+\]|[0-9a-f:]*:[0-9a-f:.]*|[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*)$/i;

/** A host name as --allow-host / MASKFLOW_ALLOWED_HOSTS give it, in the form Host headers are compared in; undefined when it is not one. */
export function normalizeAllowedHost(name: string): string | undefined {
  const trimmed = name.trim().toLowerCase().replace(/\.$/, "");
  if (!trimmed || !HOST_NAME.test(trimmed)) return undefined;
  // A bare IPv6 address is written in brackets in a Host header.
  return trimmed.includes(":") && !trimmed.startsWith("[") ? `[${trimmed}]` : trimmed;
}

/** MASKFLOW_ALLOWED_HOSTS=a,b (commas or spaces). */
export function parseAllowedHosts(value: string | undefined): string[] {
  return (value ?? "").split(/[\s,]+/).filter(Boolean);
}

export function isLoopbackName(hostname: string): boolean {
  return hostname === "localhost" || hostname === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);
}

export class OriginPolicy {
  readonly #allowed: ReadonlySet<string>;

  /** `allowedHosts`: names beyond the loopback ones (already normalized); `listenHost`: the address the server is bound to. */
  constructor(allowedHosts: readonly string[], listenHost?: string) {
    const names = new Set(allowedHosts);
    // An address the server was told to listen on is a name clients use; a wildcard address is not.
    const bound = listenHost ? normalizeAllowedHost(listenHost) : undefined;
    if (bound && bound !== "0.0.0.0" && bound !== "[::]") names.add(bound);
    this.#allowed = names;
  }

  /** Why a request (or WebSocket upgrade) with these headers is refused; undefined when it may go on. */
  problem(headers: IncomingHttpHeaders): HttpError | undefined {
    const host = parseHostHeader(headers.host);
    if (!host) {
      return new HttpError(403, "forbidden_host", "the request has no valid Host header", { field: "host" });
    }
    if (!isLoopbackName(host.hostname) && !this.#allowed.has(host.hostname)) {
      return new HttpError(
        403,
        "forbidden_host",
        `this server does not answer to the name "${host.hostname}": start it with --allow-host ${host.hostname.replace(/^\[|\]$/g, "")} (or MASKFLOW_ALLOWED_HOSTS) if that name is yours`,
        { field: "host", host: host.hostname },
      );
    }
    const origin = headers.origin;
    if (origin === undefined) return undefined;
    if (!sameOrigin(origin, host)) {
      return new HttpError(403, "forbidden_origin", `requests from the page at ${JSON.stringify(origin)} are refused: only this server's own pages may call it`, {
        field: "origin",
        origin,
      });
    }
    return undefined;
  }

  middleware(): RequestHandler {
    return (req, _res, next) => next(this.problem(req.headers));
  }
}

interface HostHeader {
  readonly hostname: string;
  /** Empty when the header names none. */
  readonly port: string;
}

function parseHostHeader(header: string | undefined): HostHeader | undefined {
  const match = header ? HOST_HEADER.exec(header.trim()) : null;
  if (!match) return undefined;
  return { hostname: match[1].toLowerCase().replace(/\.$/, ""), port: match[2] ?? "" };
}

/**
 * The page's origin names the same host and port the request was sent to. The scheme is not compared: behind
 * a TLS-terminating proxy the page is https and the request reaching us is http. `Origin: null` (a sandboxed
 * frame, a file:// page) is never the server's own.
 */
function sameOrigin(origin: string, host: HostHeader): boolean {
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false;
  }
  if ((url.protocol !== "http:" && url.protocol !== "https:") || url.origin !== origin.toLowerCase().replace(/\/$/, "")) return false;
  const defaultPort = url.protocol === "https:" ? "443" : "80";
  return url.hostname === host.hostname && (url.port || defaultPort) === (host.port || defaultPort);
}
