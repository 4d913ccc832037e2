// noop.js — a validate hook that does nothing: what the JavaScript host costs
// per call before a script does any work (runtime checkout, request view,
// decision check).
"use strict";

exports.validate = function () {
  return undefined;
};
