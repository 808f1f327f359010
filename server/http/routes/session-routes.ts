/**
 * The editor's sign-in. `POST /api/session` with the key in `x-api-key` answers with a cookie the server
 * made: an opaque token (never the key), HttpOnly so no script can read it, SameSite=Strict so no other site's
 * request carries it, Secure under https. `DELETE /api/session` ends the session and deletes the cookie.
 */
import { Router } from "express";
import { type ApiKeys, cookieValue, expiredCookie, LEGACY_KEY_COOKIE, SESSION_COOKIE, sessionCookie } from "../api-keys.ts";
import { requestIsHttps } from "../key-gate.ts";
import { SESSION_LIFETIME_SECONDS } from "../session-store.ts";

export function sessionRoutes(keys: ApiKeys): Router {
  return Router()
    .post("/session", (req, res, next) => {
      const check = keys.check(req);
      if (!check.ok) return next(check.problem);
      if (!check.holder) {
        res.json({ keyRequired: false, signedIn: true });
        return;
      }
      // A new token each time: signing in again never keeps a token someone else may have seen.
      const previous = cookieValue(req.headers.cookie, SESSION_COOKIE);
      if (previous) keys.sessions.close(previous);
      res.append("Set-Cookie", [
        sessionCookie(keys.sessions.open(check.holder.keyId), requestIsHttps(req), SESSION_LIFETIME_SECONDS),
        expiredCookie(LEGACY_KEY_COOKIE, false),
      ]);
      res.json({ keyRequired: true, signedIn: true, expiresInSeconds: SESSION_LIFETIME_SECONDS });
    })
    .delete("/session", (req, res) => {
      const token = cookieValue(req.headers.cookie, SESSION_COOKIE);
      if (token) keys.sessions.close(token);
      res.append("Set-Cookie", [expiredCookie(SESSION_COOKIE, true), expiredCookie(LEGACY_KEY_COOKIE, false)]);
      res.json({ signedIn: false });
    });
}
