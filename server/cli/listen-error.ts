/**
 * Why a server could not listen, in one line that says what to do: a busy port, a port the user may
 * not open, a host that is not this machine's. Anything else is left to the caller.
 */
export function describeListenError(error: unknown, host: string, port: number): string | undefined {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const where = `port ${port} on ${host}`;
  switch (code) {
    case "EADDRINUSE":
      return `${where} is in use: stop the other server or pass --port N`;
    case "EACCES":
    case "EPERM":
      return `${where} may not be opened by this user (ports below 1024 need privileges): pass --port N with N ≥ 1024`;
    case "EADDRNOTAVAIL":
      return `cannot listen on ${host}: it is not an address of this machine; pass --host 127.0.0.1, 0.0.0.0 or one of its addresses`;
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return `cannot listen on ${host}: the host name does not resolve; pass --host with an address such as 127.0.0.1`;
    default:
      return undefined;
  }
}
