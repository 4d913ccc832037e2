// Type declarations for Gatehouse hook scripts (package scripts).
//
// A script defines any of the phase functions, CommonJS style:
//
//   /** @type {import("./gatehouse").Validate} */
//   exports.validate = function (req) { ... };
//
// or, in TypeScript compiled to CommonJS:
//
//   import type { Request, ValidateDecision } from "./gatehouse";
//   export function validate(req: Request): ValidateDecision | undefined { ... }
//
// Each function returns a plain decision object, or undefined for "no
// opinion". A decision of the wrong type (a string, `status: "abc"`, an
// unknown field such as `stauts`, a Promise) fails the call; values such as
// a status outside 400..599, a reserved header or an unknown service are
// refused by the gateway's core under the binding's failure policy.
//
// There is no network, filesystem, timer or dynamic code: no fetch,
// XMLHttpRequest, setTimeout, setInterval, eval, Function constructor,
// BigInt, ArrayBuffer or typed arrays; require() takes only relative paths
// of the script's own bundle directory.

/** Header names are case-insensitive everywhere. */
export type HeaderMap = Readonly<Record<string, string>>;

/** TLS facts of the client connection. */
export interface TLSInfo {
  /** Negotiated version, e.g. "TLS 1.3". */
  readonly version: string;
  /** SNI name the client asked for ("" when none). */
  readonly serverName: string;
  /** Negotiated cipher suite (IANA name). */
  readonly cipherSuite: string;
  /** Negotiated ALPN protocol, e.g. "h2" ("" when none). */
  readonly alpn: string;
  /** Subject of the verified client certificate (RFC 2253), "" when none. */
  readonly peerSubject: string;
}

/**
 * The request as a hook sees it: read-only (assignments are ignored, or
 * throw in strict mode). The object is reused between calls: do not keep
 * it past the call.
 */
export interface Request {
  /** The gateway's request ID (also in logs and the passport). */
  readonly id: string;
  /** HTTP method, e.g. "GET". */
  readonly method: string;
  /** "http" or "https". */
  readonly scheme: string;
  /** The authority the client asked for. */
  readonly host: string;
  /** Request path, not decoded, without the query. */
  readonly path: string;
  /** Query string without "?", not decoded ("" when none). */
  readonly rawQuery: string;
  /** First value of a header field, or undefined. Case-insensitive. */
  header(name: string): string | undefined;
  /** Every value of a header field ([] when absent). */
  headerValues(name: string): string[];
  /** Header fields by name (any case); several values joined by ", " (Cookie by "; "). */
  readonly headers: HeaderMap;
  /** Client address without port. */
  readonly clientIP: string;
  /** TLS facts, null on plain connections. */
  readonly tls: TLSInfo | null;
  /** Name of the matched route. */
  readonly route: string;
  /** Service the route targets (the route phase may change it). */
  readonly service: string;
  /** Labels set by earlier hooks and phases. */
  readonly labels: Readonly<Record<string, string>>;
  /** The start of the body, only when the binding asks for it; undefined otherwise. */
  readonly body: string | undefined;
  /** True when the body was longer than the binding's bound and `body` is its start. */
  readonly bodyTruncated: boolean;
}

/** The response the respond phase sees. */
export interface Response {
  readonly status: number;
  header(name: string): string | undefined;
  headerValues(name: string): string[];
  readonly headers: HeaderMap;
}

/** What the observe phase sees once the request is finished. */
export interface Observation {
  readonly request: Request;
  /** Status sent to the client (0 when none was sent). */
  readonly status: number;
  /** "ok" or a failure kind, e.g. "rejected", "upstream_timeout", "client_gone". */
  readonly outcome: string;
  readonly totalMs: number;
  /** Total time minus time spent waiting on others (client, backends). */
  readonly overheadMs: number;
  /** The passport in text form: "+0.01ms=HEADERS_READ ... +12.4ms=DONE". */
  readonly passport: string;
}

/** Ends the request with this response instead of forwarding it. */
export interface Reject {
  /** 400..599 (the core refuses anything else). */
  status: number;
  /** Extra response header fields. */
  header?: Record<string, string | number | boolean>;
  /** A short body. */
  body?: string;
}

/** Labels: short strings added to the request for later phases and logs. */
export type Labels = Record<string, string | number | boolean>;

export interface ValidateDecision {
  reject?: Reject | null;
  labels?: Labels;
}

/** Traffic tiers, shed lowest first. */
export type Priority = "bulk" | "degraded" | "default" | "critical";

export interface ShapeDecision {
  reject?: Reject | null;
  /** Unset keeps the route's default. */
  priority?: Priority;
  /** Rate-limit bucket; unset uses the route's default key. */
  rateKey?: string;
  /** Tokens taken from the bucket; unset means 1. */
  cost?: number;
  labels?: Labels;
}

export interface RouteDecision {
  /** A configured service name. */
  service?: string;
  /** Path sent upstream, starting with "/". */
  path?: string;
  /** Request header fields to set upstream. */
  setHeader?: Record<string, string | number | boolean>;
  /** Request header fields to remove upstream. */
  removeHeader?: string[];
  /** Upstream timeout in milliseconds; may only tighten the route's bound. */
  timeoutMs?: number;
  labels?: Labels;
}

export interface RespondDecision {
  setHeader?: Record<string, string | number | boolean>;
  removeHeader?: string[];
}

export type Validate = (req: Request) => ValidateDecision | undefined | null;
export type Shape = (req: Request) => ShapeDecision | undefined | null;
export type Route = (req: Request) => RouteDecision | undefined | null;
export type Respond = (req: Request, resp: Response) => RespondDecision | undefined | null;
export type Observe = (obs: Observation) => void;

/** What a script exports: any of the phase functions, nothing else. */
export interface Hooks {
  validate?: Validate;
  shape?: Shape;
  route?: Route;
  respond?: Respond;
  observe?: Observe;
}

/** Result of gatehouse.url.parse. */
export interface ParsedURL {
  scheme: string;
  username: string;
  /** host[:port] */
  host: string;
  hostname: string;
  port: string;
  /** Escaped path. */
  path: string;
  rawQuery: string;
  fragment: string;
  query: Record<string, string[]>;
}

/** The global `gatehouse` object. Everything in it is frozen. */
export interface Gatehouse {
  /** The script's configuration (deep-frozen). */
  readonly config: Readonly<Record<string, any>>;
  /** The script's name. */
  readonly name: string;
  /** The version ID of this script (a hash of its files). */
  readonly version: string;
  /**
   * A stable bucket in 0..buckets-1 for key (xxhash64 of its UTF-8 bytes,
   * modulo buckets): `gatehouse.bucket(userId, 100) < 5` selects 5% of users,
   * always the same ones.
   */
  bucket(key: string, buckets: number): number;
  readonly crypto: {
    /** Hex HMAC-SHA256 of msg under key (both as UTF-8). */
    hmacSHA256(key: string, msg: string): string;
    /** Hex SHA-256 of msg (as UTF-8). */
    sha256(msg: string): string;
    /** Constant-time string comparison (false when the lengths differ). */
    timingSafeEqual(a: string, b: string): boolean;
  };
  readonly base64: {
    /** Standard base64 (with padding) of the UTF-8 bytes of s. */
    encode(s: string): string;
    /** Decodes standard base64 (padding optional) to a string (UTF-8). Throws TypeError on bad input. */
    decode(s: string): string;
    /** URL-safe base64 without padding. */
    encodeURL(s: string): string;
    /** Decodes URL-safe base64 (padding optional). */
    decodeURL(s: string): string;
  };
  readonly url: {
    /** Parses an absolute or relative URL; throws TypeError when it does not parse. */
    parse(s: string): ParsedURL;
    /**
     * Decodes a query string ("?" optional) into arrays of values, in
     * order; a component that does not unescape is kept as it is.
     */
    parseQuery(q: string): Record<string, string[]>;
  };
}

declare global {
  const gatehouse: Gatehouse;
  /**
   * Lines go to the gateway's log with the script's name, version and the
   * request ID, rate-limited per script. Objects are printed as JSON.
   */
  interface Console {
    log(...args: any[]): void;
    info(...args: any[]): void;
    debug(...args: any[]): void;
    warn(...args: any[]): void;
    error(...args: any[]): void;
  }
  var console: Console;
  /** CommonJS: only relative paths of the script's own bundle ("./lib/x.js", "./data.json"). */
  function require(path: `./${string}` | `../${string}`): any;
  var module: { exports: Hooks | Record<string, unknown> };
  var exports: Hooks;
}
