// validate.js — reject requests the backends should never see.
//
//   - no credentials (neither "Authorization: Bearer ..." nor "X-Api-Key")   -> 401
//   - a pathological query string (too long, or too many parameters)          -> 414 / 400
//   - oversized cookies (the Cookie header, or one cookie, too large)          -> 431
//
// The limits come from gatehouse.config when set there (see the cases file).
"use strict";

var cfg = gatehouse.config;
var MAX_QUERY_LENGTH = cfg.maxQueryLength || 2048;
var MAX_QUERY_PARAMS = cfg.maxQueryParams || 64;
var MAX_COOKIE_HEADER = cfg.maxCookieHeader || 4096;
var MAX_COOKIE = cfg.maxCookie || 1024;

function reject(status, body, header) {
  return { reject: { status: status, body: body, header: header } };
}

exports.validate = function (req) {
  // Cheap checks on sizes first: they need no parsing.
  if (req.rawQuery.length > MAX_QUERY_LENGTH) {
    return reject(414, "query string too long");
  }
  if (req.rawQuery !== "") {
    var params = req.rawQuery.split("&").length;
    if (params > MAX_QUERY_PARAMS) {
      return reject(400, "too many query parameters");
    }
  }

  var cookie = req.headers.cookie;
  if (cookie !== undefined) {
    if (cookie.length > MAX_COOKIE_HEADER) {
      return reject(431, "cookies too large");
    }
    var parts = cookie.split(";");
    for (var i = 0; i < parts.length; i++) {
      if (parts[i].trim().length > MAX_COOKIE) {
        return reject(431, "cookie too large");
      }
    }
  }

  var auth = req.header("authorization");
  if (auth !== undefined && /^Bearer [A-Za-z0-9._~+\/-]+=*$/.test(auth)) {
    return { labels: { auth: "bearer" } };
  }
  var key = req.header("x-api-key");
  if (key !== undefined && key.length >= 16) {
    // Label with a hash, never the key itself: labels end up in logs.
    return { labels: { auth: "api-key", key: gatehouse.crypto.sha256(key).slice(0, 12) } };
  }
  return reject(401, "credentials required", { "WWW-Authenticate": 'Bearer realm="api"' });
};
