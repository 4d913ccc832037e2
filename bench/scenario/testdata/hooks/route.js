// route.js — the hooks benchmark's route hook: a versioned path prefix is
// stripped for the same service, and every request carries its client label
// upstream as a header.
"use strict";

exports.route = function (req) {
  var d = { setHeader: { "X-Client": req.labels.client || "unknown" } };
  if (req.path.indexOf("/v1/") === 0) {
    d.path = req.path.slice(3);
  }
  return d;
};
