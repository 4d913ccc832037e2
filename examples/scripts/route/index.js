// route — a canary for the users service, with a signed per-request override.
//
//   - 5% of users, stable by user ID, go to users-v2 (the same user always
//     lands on the same side: gatehouse.bucket hashes the ID).
//   - A request may ask for a service with "X-Route-Override: <service>",
//     honoured only when "X-Route-Signature" is the HMAC-SHA256 of
//     "<service>|<path>" under gatehouse.config.overrideKey, and the service
//     is one the config allows. Otherwise the override is ignored and
//     labelled, so it shows in logs.
//
// A directory bundle: index.js requires its own modules with relative paths.
"use strict";

var sign = require("./lib/sign.js");

var CANARY_PERCENT = gatehouse.config.canaryPercent === undefined ? 5 : gatehouse.config.canaryPercent;
var ALLOWED = gatehouse.config.overrideServices || ["users", "users-v2"];

function userID(req) {
  return req.labels.user || req.header("x-user-id") || "";
}

exports.route = function (req) {
  if (req.route !== "users") return undefined;

  var override = req.header("x-route-override");
  if (override !== undefined) {
    if (ALLOWED.indexOf(override) >= 0 && sign.verify(override + "|" + req.path, req.header("x-route-signature"))) {
      return { service: override, labels: { routed: "override" }, removeHeader: ["X-Route-Override", "X-Route-Signature"] };
    }
    // Fall through to the canary; say why in the labels.
    var d = canary(req);
    d.labels.override = "rejected";
    return d;
  }
  return canary(req);
};

function canary(req) {
  var id = userID(req);
  if (id !== "" && gatehouse.bucket(id, 100) < CANARY_PERCENT) {
    return { service: "users-v2", setHeader: { "X-Canary": "users-v2" }, timeoutMs: 800, labels: { routed: "canary" } };
  }
  return { labels: { routed: "stable" } };
}
