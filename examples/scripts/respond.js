// respond.js — security headers on every response, and no server banner.
"use strict";

exports.respond = function (req, resp) {
  var set = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
  };
  if (req.scheme === "https") {
    set["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains";
  }
  var type = resp.header("content-type") || "";
  if (type.indexOf("text/html") === 0) {
    set["X-Frame-Options"] = "DENY";
    if (resp.header("content-security-policy") === undefined) {
      set["Content-Security-Policy"] = "default-src 'self'; frame-ancestors 'none'";
    }
  }
  return { setHeader: set, removeHeader: ["Server", "X-Powered-By"] };
};
