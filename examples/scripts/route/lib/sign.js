// sign.js — HMAC signatures over override requests.
"use strict";

var key = gatehouse.config.overrideKey;

// verify reports whether sig is the hex HMAC-SHA256 of msg under the
// configured key. Without a key nothing verifies.
exports.verify = function (msg, sig) {
  if (!key || typeof sig !== "string") return false;
  return gatehouse.crypto.timingSafeEqual(gatehouse.crypto.hmacSHA256(key, msg), sig.toLowerCase());
};
