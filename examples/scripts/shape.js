// shape.js — priority tiers by path and client kind, and a rate-limit key.
//
//   critical  logins, payments, health checks: shed last
//   bulk      crawlers and batch clients, exports: shed first
//   degraded  reports and search, which may be served late
//   default   everything else
//
// The rate key is the authenticated key's hash (a label set by validate)
// when there is one, the client address otherwise; exports cost more.
"use strict";

var CRITICAL = /^\/(login|logout|payments|healthz)(\/|$)/;
var DEGRADED = /^\/(reports|search)(\/|$)/;
var BOT = /bot|crawler|spider|curl|wget/i;

function clientKind(req) {
  var kind = req.header("x-client-kind");
  if (kind === "batch" || kind === "mobile" || kind === "web") return kind;
  var ua = req.header("user-agent") || "";
  if (BOT.test(ua)) return "bot";
  return "web";
}

module.exports = {
  shape: function (req) {
    var kind = clientKind(req);
    var priority = "default";
    if (CRITICAL.test(req.path)) {
      priority = "critical";
    } else if (kind === "bot" || kind === "batch" || req.path.indexOf("/export") === 0) {
      priority = "bulk";
    } else if (DEGRADED.test(req.path)) {
      priority = "degraded";
    }
    var who = req.labels.key ? "key:" + req.labels.key : "ip:" + req.clientIP;
    return {
      priority: priority,
      rateKey: who,
      cost: req.path.indexOf("/export") === 0 ? 10 : 1,
      labels: { client: kind },
    };
  },
};
