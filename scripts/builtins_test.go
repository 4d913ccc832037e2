package scripts

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/gatehouse/gatehouse/sdk"
)

// evaluator is a script that evaluates one of a table of expressions per
// call (the request path names it) and returns its String() form.
type evaluator struct {
	s     *Script
	index map[string]int
}

func newEvaluator(t *testing.T, opts Options, exprs map[string]string) *evaluator {
	t.Helper()
	e := &evaluator{index: map[string]int{}}
	var b strings.Builder
	b.WriteString("var table = [\n")
	for expr := range exprs {
		e.index[expr] = len(e.index)
		b.WriteString("  function () { return " + expr + " },\n")
	}
	b.WriteString("];\nexports.validate = function (req) { return {labels: {r: String(table[Number(req.path)]())}} };")
	e.s = compileSrc(t, b.String(), opts)
	return e
}

func (e *evaluator) eval(t *testing.T, expr string) (string, error) {
	t.Helper()
	d, err := e.s.Validate(ctxT(t, 2*time.Second), &sdk.Request{Path: strconv.Itoa(e.index[expr])})
	if err != nil {
		return "", err
	}
	return d.Labels["r"], nil
}

func TestGatehouseHelpers(t *testing.T) {
	opts := DefaultOptions()
	opts.Config = map[string]any{"key": "k1", "nested": map[string]any{"list": []any{1, 2}}}
	mac := hmac.New(sha256.New, []byte("secret"))
	mac.Write([]byte("message"))
	sum := sha256.Sum256([]byte("abc"))
	cases := map[string]string{
		`gatehouse.bucket("user-17", 100)`:                                                              "3",
		`gatehouse.bucket("user-0", 100)`:                                                               "64",
		`gatehouse.crypto.hmacSHA256("secret", "message")`:                                              hex.EncodeToString(mac.Sum(nil)),
		`gatehouse.crypto.sha256("abc")`:                                                                hex.EncodeToString(sum[:]),
		`gatehouse.crypto.timingSafeEqual("abc", "abc")`:                                                "true",
		`gatehouse.crypto.timingSafeEqual("abc", "abd")`:                                                "false",
		`gatehouse.crypto.timingSafeEqual("abc", "abcd")`:                                               "false",
		`gatehouse.base64.encode("héllo?")`:                                                             "aMOpbGxvPw==",
		`gatehouse.base64.decode("aMOpbGxvPw==")`:                                                       "héllo?",
		`gatehouse.base64.decode("aMOpbGxvPw")`:                                                         "héllo?",
		`gatehouse.base64.encodeURL("héllo?")`:                                                          "aMOpbGxvPw",
		`gatehouse.base64.decodeURL("aMOpbGxvPw")`:                                                      "héllo?",
		`JSON.stringify(gatehouse.url.parse("https://u@api.example.com:8443/a%20b/c?x=1&x=2&y=#frag"))`: `{"scheme":"https","username":"u","host":"api.example.com:8443","hostname":"api.example.com","port":"8443","path":"/a%20b/c","rawQuery":"x=1&x=2&y=","fragment":"frag","query":{"x":["1","2"],"y":[""]}}`,
		`JSON.stringify(gatehouse.url.parseQuery("?a=1&b=%20x&a=3&bad=%zz&&flag"))`:                     `{"a":["1","3"],"b":[" x"],"bad":["%zz"],"flag":[""]}`,
		`gatehouse.config.key + gatehouse.config.nested.list.length`:                                    "k12",
		`(function () { "use strict"; try { gatehouse.config.key = "x"; return "writable" } catch (e) { return e.name } })()`:               "TypeError",
		`(function () { "use strict"; try { gatehouse.config.nested.list.push(3); return "writable" } catch (e) { return e.name } })()`:     "TypeError",
		`(function () { "use strict"; try { gatehouse.crypto.sha256 = null; return "writable" } catch (e) { return e.name } })()`:           "TypeError",
		`(function () { try { gatehouse.bucket("x", 0) } catch (e) { return e.name } })()`:                                                  "TypeError",
		`(function () { try { gatehouse.base64.decode("***") } catch (e) { return e.name } })()`:                                            "TypeError",
		`(function () { try { gatehouse.url.parse("http://[::1") } catch (e) { return e.name } })()`:                                        "TypeError",
		`typeof fetchX + typeof module.require + typeof process + typeof ArrayBuffer + typeof Uint8Array + typeof BigInt + typeof Function`: "undefinedundefinedundefinedundefinedundefinedundefinedfunction",
		`(function () { try { eval("1") } catch (e) { return e.name } })()`:                                                                 "EvalError",
		`(function () { try { new Function("return 1") } catch (e) { return e.name } })()`:                                                  "EvalError",
		`(function () { try { (async function () {}).constructor("return 1") } catch (e) { return e.name } })()`:                            "EvalError",
		`(function () {}) instanceof Function`: "true",
	}
	ev := newEvaluator(t, opts, cases)
	for expr, want := range cases {
		got, err := ev.eval(t, expr)
		if err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", expr, got, err, want)
		}
	}
	// The bucket is xxhash of the key, so Go code can predict it.
	if xxhash.Sum64String("user-17")%100 != 3 {
		t.Error("bucket is not xxhash")
	}
}

func TestJSONStringifyMatchesECMAScript(t *testing.T) {
	cases := map[string]string{
		`JSON.stringify({a: 1, b: [1, "x", null, true, undefined, function () {}], c: undefined, d: {e: -0.5e-7}})`: `{"a":1,"b":[1,"x",null,true,null,null],"d":{"e":-5e-8}}`,
		`JSON.stringify("he said \"hi\"\n\u0001\u2028é😀")`:                                                          `"he said \"hi\"\n\u0001` + "\u2028é😀" + `"`,
		`JSON.stringify("\ud800x")`:                                                                              `"\ud800x"`,
		`JSON.stringify({b: 2, a: 1, 10: "n", 2: "m"})`:                                                          `{"2":"m","10":"n","b":2,"a":1}`,
		`JSON.stringify([NaN, Infinity, 1e21, 0.1])`:                                                             `[null,null,1e+21,0.1]`,
		`JSON.stringify({d: new Date(0)})`:                                                                       `{"d":"1970-01-01T00:00:00.000Z"}`,
		`JSON.stringify({a: {toJSON: function (k) { return "k=" + k }}})`:                                        `{"a":"k=a"}`,
		`JSON.stringify({a: 1, b: 2, c: {a: 3, z: 4}}, ["a", "c"])`:                                              `{"a":1,"c":{"a":3}}`,
		`JSON.stringify({a: 1, b: "x"}, function (k, v) { return typeof v === "number" ? v * 2 : v })`:           `{"a":2,"b":"x"}`,
		`JSON.stringify({a: [1, {b: 2}], c: {}}, null, 2)`:                                                       "{\n  \"a\": [\n    1,\n    {\n      \"b\": 2\n    }\n  ],\n  \"c\": {}\n}",
		`JSON.stringify([1], null, "--")`:                                                                        "[\n--1\n]",
		`JSON.stringify(new String("s")) + JSON.stringify(new Number(3)) + JSON.stringify(new Boolean(false))`:   `"s"3false`,
		`String(JSON.stringify(undefined)) + String(JSON.stringify(function () {}))`:                             "undefinedundefined",
		`JSON.stringify(Object.create({inherited: 1}, {own: {value: 2, enumerable: true}, hidden: {value: 3}}))`: `{"own":2}`,
		`(function () { var a = []; a[0] = a; try { JSON.stringify(a) } catch (e) { return e.name } })()`:        "TypeError",
		`JSON.stringify(JSON.parse('{"a":[1,2,{"b":"c"}],"d":null}'))`:                                           `{"a":[1,2,{"b":"c"}],"d":null}`,
	}
	ev := newEvaluator(t, DefaultOptions(), cases)
	for expr, want := range cases {
		got, err := ev.eval(t, expr)
		if err != nil || got != want {
			t.Errorf("%s\n got %q, %v\nwant %q", expr, got, err, want)
		}
	}
}

// The guarded built-ins behave like the originals within the bounds; the
// regexp and string replacements are checked on both paths (goja's native
// one for short strings, the bounded one for long strings).
func TestGuardedBuiltinsKeepTheirSemantics(t *testing.T) {
	cases := map[string]string{
		`[1, [2, [3, [4]]], "x", null, undefined].join("-")`:                          "1-2,3,4-x--",
		`String([1, [2, 3]])`:                                                         "1,2,3",
		`(function () { var a = [1, 2]; a.push(a); return String(a) })()`:             "1,2,",
		`["b", undefined, "a", 10, 9, , "c"].sort().join("|")`:                        "10|9|a|b|c||",
		`[3, 1, 2].sort(function (a, b) { return b - a }).join()`:                     "3,2,1",
		`[1, [2, [3, [4]]]].flat(Infinity).join()`:                                    "1,2,3,4",
		`[1, [2, [3]]].flat().length`:                                                 "3",
		`[1, 2, 3].flatMap(function (x) { return [x, x * 10] }).join()`:               "1,10,2,20,3,30",
		`[1, 2].concat([3], 4, [[5]]).length`:                                         "5",
		`Array.from({length: 3}, function (_, i) { return i * 2 }).join()`:            "0,2,4",
		`Math.max.apply(null, [1, 5, 3])`:                                             "5",
		`Math.max(...[1, 7, 3])`:                                                      "7",
		`"ab".repeat(3) + "x".padStart(4, "-") + "x".padEnd(3, "=")`:                  "ababab---xx==",
		`"a-b-c".split("-").length + "," + "abc".split("").length`:                    "3,3",
		`"a1b22c333".split(/\d+/).join("|")`:                                          "a|b|c|",
		`String.raw({raw: ["a", "b", "c"]}, 1, 2)`:                                    "a1b2c",
		`String.raw` + "`x${1}\\n`":                                                   `x1\n`,
		`"2024-01-15".replace(/(\d+)-(\d+)-(\d+)/, "$3/$2/$1 [$&] $$ $0 $9")`:         "15/01/2024 [2024-01-15] $ $0 $9",
		`"aXbXc".replace(/X/g, "<$` + "`" + `|$'>")`:                                  "a<a|bXc>b<aXb|c>c",
		`"john smith".replace(/(?<first>\w+) (?<last>\w+)/, "$<last>, $<first>")`:     "smith, john",
		`"aaa".replace(/a*?/g, "-")`:                                                  "-a-a-a-",
		`"abc".replace(/x*/g, "-")`:                                                   "-a-b-c-",
		`"x1y22".replace(/\d+/g, function (m, i) { return "[" + m + "@" + i + "]" })`: "x[1@1]y[22@3]",
		`"a.b.c".replaceAll(".", "$&$&")`:                                             "a..b..c",
		`"a.b.c".replace(".", function (m, i, s) { return i + s.length })`:            "a6b.c",
		`"aXbX".replaceAll("X", function () { return "-" })`:                          "a-b-",
		`("a,b;c".match(/[,;]/g) || []).join("")`:                                     ",;",
		`"🙂x🙂".replace(/(?:)/gu, "|")`:                                                "|🙂|x|🙂|",
		// Guards of work and of lengths read twice (guardwork.go, regexptime.go).
		`[1, NaN, "a", , 3].includes(NaN) + "," + [1, 2, 3].includes(2, 2) + "," + [, 1].includes(undefined) + "," + [-0].includes(0)`:                                                                                  "true,false,true,true",
		`[1, 2, 1, NaN].indexOf(1, 1) + "," + [NaN].indexOf(NaN) + "," + [1, 2, 1].lastIndexOf(1) + "," + [1, 2, 1].lastIndexOf(1, -2) + "," + [, 1].indexOf(undefined)`:                                                "2,-1,2,0,-1",
		`Array.prototype.indexOf.call({length: 2, 0: "a", 1: "b"}, "b") + "," + Array.prototype.includes.call("abc", "c")`:                                                                                              "1,true",
		`(function () { var a = [1, , 3].concat([4], 5, {length: 1, 0: "s", [Symbol.isConcatSpreadable]: true}); return a.length + ":" + (1 in a) + ":" + a.join() })()`:                                                "6:false:1,,3,4,5,s",
		`[1, [2, , [3, [4]]]].flat(2).join() + "|" + [[1], [2]].flat(0).length`:                                                                                                                                         "1,2,3,4|2",
		`JSON.stringify(Object.entries({a: 1, b: "x"})) + JSON.stringify(Object.values("ab"))`:                                                                                                                          `[["a",1],["b","x"]]["a","b"]`,
		`JSON.stringify(Object.assign({a: 1}, null, "xy", {b: 2, [Symbol("s")]: 3}, [9]))`:                                                                                                                              `{"0":9,"1":"y","a":1,"b":2}`,
		`(function () { var s = Symbol("s"), o = Object.assign({}, {[s]: 1}); return o[s] })()`:                                                                                                                         "1",
		`JSON.stringify({...{a: 1}, ..."hi", ...null, ...[7]})`:                                                                                                                                                         `{"0":7,"1":"i","a":1}`,
		`Array.from({length: 2, 0: "a"}).join("|") + "," + Array.from(new Set([1, 1, 2])).join() + "," + Array.from("ab", function (c) { return c + c }).join()`:                                                        "a|,1,2,aa,bb",
		`"a1b2c3".split(/\d/).join("|") + "," + "a1b2".split(/(\d)/).join("|") + "," + "abc".split(/(?:)/).join("|") + "," + "".split(/x/).length + "," + "".split(/(?:)/).length + "," + "a,b,c".split(/,/, 2).join()`: "a|b|c|,a|1|b|2|,a|b|c,1,0,a,b",
		`"é".normalize("NFD").length + "," + "é".normalize().length + "," + "ﬁ".normalize("NFKD")`:                                                                                                                     "2,1,fi",
		`encodeURIComponent("a b/é😀") + " " + encodeURI("http://x/a b?q=1#f") + " " + escape("a b+éā")`:                                                                                                                 "a%20b%2F%C3%A9%F0%9F%98%80 http://x/a%20b?q=1#f a%20b+%E9%u0101",
		`Array.from("a1b22".matchAll(/\d+/g), function (m) { return m[0] + "@" + m.index }).join()`:                                                                                                                     "1@1,22@3",
		`/(\w)\1/.exec("abccd").index + "," + /(?<=a)b/.test("ab") + "," + "xaby".search(/(?=b)/)`:                                                                                                                      "2,true,2",
		`(function () { var r = /a/g; r.lastIndex = 1; return r.test("aba") + ":" + r.lastIndex })()`:                                                                                                                   "true:3",
		// + and template literals go through the concatenation guard.
		`1 + 2`:           "3",
		`"a" + 1 + 2`:     "a12",
		`1 + 2 + "a"`:     "3a",
		`null + 1`:        "1",
		`undefined + "x"`: "undefinedx",
		`true + true`:     "2",
		`[1, 2] + [3]`:    "1,23",
		`({valueOf: function () { return 1 }, toString: function () { return "s" }}) + 1`:  "2",
		`"" + {valueOf: function () { return 1 }, toString: function () { return "s" }}`:   "1",
		"`${{valueOf: function () { return 1 }, toString: function () { return \"s\" }}}`": "s",
		`({[Symbol.toPrimitive]: function (h) { return h }}) + ""`:                         "default",
		`typeof (new Date(0) + 1)`: "string",
		`(function () { var n = 0, o = {get v() { n++; return 1 }}; return (o.v + o.v) + "/" + n })()`:                               "2/2",
		`(function () { var x = 1; x += 2; x += "a"; return x })()`:                                                                  "3a",
		`(function () { var o = {c: 1}; o.c += 1; o["c"] += 1; return o.c })()`:                                                      "3",
		`(function () { var n = 0, a = [5]; function f() { n++; return a } f()[0] += 1; f()[n - 2] += 1; return a[0] + ":" + n })()`: "7:2",
		`(function () { var k = 0, o = {a1: "x"}; o["a" + (++k)] += "y"; return o.a1 + k })()`:                                       "xy1",
		"(function () { var a = 1, b = \"z\"; return `${a}-${b}-${[1, 2]}` })()":                                                     "1-z-1,2",
		`(function () { class C { #x = 1; inc() { this.#x += 2; return this.#x } } return new C().inc() })()`:                        "3",
		`(function () { try { return Symbol() + "" } catch (e) { return e.name } })()`:                                               "TypeError",
		`(function () { var f = (a, b) => a + b; return f(1, 2) + f("a", "b") })()`:                                                  "3ab",
	}
	for _, fast := range []bool{true, false} {
		saved := fastPathLength
		if fast {
			fastPathLength = 1 << 30
		} else {
			fastPathLength = 0
		}
		ev := newEvaluator(t, DefaultOptions(), cases)
		for expr, want := range cases {
			got, err := ev.eval(t, expr)
			if err != nil || got != want {
				t.Errorf("fast path %v: %s\n got %q, %v\nwant %q", fast, expr, got, err, want)
			}
		}
		fastPathLength = saved
	}
}

func TestGuardsThrowCatchableRangeErrors(t *testing.T) {
	opts := DefaultOptions()
	opts.MaxStringLength = 100
	opts.MaxArrayLength = 10
	cases := map[string]string{
		`"x".repeat(100).length`:                                       "100",
		`"x".repeat(101)`:                                              "RangeError",
		`"x".padStart(101)`:                                            "RangeError",
		`Array(11).fill(0)`:                                            "RangeError",
		`Array(10).fill(0).length`:                                     "10",
		`[...Array(11)]`:                                               "RangeError",
		`"x".repeat(60).replace("x", "y".repeat(50))`:                  "RangeError",
		`"abcdefghijkl".split("")`:                                     "RangeError",
		`"abcdefghijkl".split("", 5).length`:                           "5",
		`JSON.stringify("x".repeat(99))`:                               "RangeError",
		`gatehouse.base64.encode("x".repeat(90))`:                      "RangeError",
		`("x".repeat(50) + "y".repeat(50)).length`:                     "100",
		`"x".repeat(50) + "y".repeat(51)`:                              "RangeError",
		`(function () { var s = "x".repeat(60); s += s; return s })()`: "RangeError",
		"`${\"x\".repeat(101 - 1)}`.length":                            "100",
		"`${\"x\".repeat(60) + \"\"}${\"x\".repeat(60)}`.length":       "120",
		"(function () { var s = `${\"x\".repeat(60)}${\"x\".repeat(60)}`; return `${s}` })()": "RangeError",
		`"x".repeat(100) + {toString: function () { return "y" }}`:                            "RangeError",
	}
	wrap := func(e string) string {
		return `(function () { try { return ` + e + ` } catch (e) { return e.name } })()`
	}
	wrapped := map[string]string{}
	for e, want := range cases {
		wrapped[wrap(e)] = want
	}
	ev := newEvaluator(t, opts, wrapped)
	for e, want := range cases {
		got, err := ev.eval(t, wrap(e))
		if err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", e, got, err, want)
		}
	}
}
