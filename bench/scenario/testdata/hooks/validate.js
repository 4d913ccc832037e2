// validate.js — the hooks benchmark's validate hook: small, and typical of
// what a team writes first. It turns away methods the API does not serve,
// oversized or traversing paths and oversized query strings, and labels the
// request for later phases and the logs.
//
// It asks for no header: the harness's closed loop (wrk) sends only Host.
"use strict";

var METHODS = { GET: true, HEAD: true, POST: true, PUT: true, DELETE: true };
var MAX_PATH = 2048;
var MAX_QUERY = 1024;

exports.validate = function (req) {
  if (!METHODS[req.method]) {
    return { reject: { status: 405, body: "method not allowed" } };
  }
  if (req.path.length > MAX_PATH || req.path.indexOf("/../") >= 0) {
    return { reject: { status: 400, body: "bad path" } };
  }
  if (req.rawQuery.length > MAX_QUERY) {
    return { reject: { status: 414, body: "query string too long" } };
  }
  if (req.host === "") {
    return { reject: { status: 400, body: "host required" } };
  }
  return { labels: { client: req.header("user-agent") || "anonymous" } };
};
