package inbound

import (
	"bytes"
	"sync"
)

// framer follows an HTTP/1 connection's request stream as it is read, the
// way net/http frames it: where each head ends, and where its body ends
// (Content-Length bytes, or chunked framing to its last chunk and
// trailers). Every head is seen, however the client splits or pipelines
// its requests: a request pipelined behind another, or sent in the same
// read as the previous body, is looked at like the first one.
//
// For each head it records the framing fields net/http hides from the
// handler: it drops Content-Length when Transfer-Encoding is present, and
// Transfer-Encoding on HTTP/1.0. The handler claims the facts of its
// request in order (claim), and checks by the request line's length that
// they are its own.
//
// When the stream stops making sense as HTTP/1 (a framing error, which
// net/http also refuses and closes the connection on, or a protocol
// switch), the framer stops: lost. The handler then treats what it cannot
// check conservatively.
type framer struct {
	st     fstate
	line   [lineKeep]byte // the first bytes of the current line
	nline  int            // the current line's length so far
	last   byte           // the current line's last byte
	cr     int            // CRs in the current line (a chunk line may have one, at its end)
	prev   fieldKind      // the previous head line's field (for folded lines)
	remain uint64         // body or chunk-data bytes left; CRLF bytes left in fChunkEnd
	cur    headFacts
	h2     bool // the connection turned out to speak HTTP/2 (prior knowledge)

	mu    sync.Mutex // heads and lost: claim runs on the handler's goroutine
	heads []headFacts
	lost  bool
}

// lineKeep is how much of a line the framer keeps: enough for every field
// it reads ("Transfer-Encoding:" and its value, "Content-Length:" and 19
// digits, a chunk size), with room for spaces around the value.
const lineKeep = 64

// maxQueuedHeads bounds the heads read ahead of their handler: net/http
// reads at most a buffer (4 KiB) ahead of the request it serves, so more
// means the handler is not claiming them; the framer then stops.
const maxQueuedHeads = 256

type fstate uint8

const (
	fHead      fstate = iota // in a request head
	fBody                    // in a Content-Length body
	fChunkLine               // in a chunk-size line
	fChunkData               // in a chunk's data
	fChunkEnd                // in the CRLF after a chunk's data
	fTrailer                 // in the trailer section after the last chunk
	fLost
)

type fieldKind uint8

const (
	fieldOther fieldKind = iota
	fieldCL
	fieldTE
)

// headFacts is what the framer saw in one request head.
type headFacts struct {
	start   int64 // mono() of the read that brought the head's first byte
	lineLen int   // the request line's length, without its line end
	lines   int   // lines so far (the request line is the first)
	cl      bool  // a Content-Length field
	te      bool  // a Transfer-Encoding field
	folded  bool  // a Content-Length or Transfer-Encoding value continued on another line (obs-fold)
	// For the body's framing (net/http's rules: exactly one
	// Transfer-Encoding, "chunked"; else Content-Length, digits only).
	chunked bool
	teCount int
	clValue uint64
	clBad   bool
}

var (
	clName = []byte("content-length:")
	teName = []byte("transfer-encoding:")
)

// feed follows b, the bytes just read.
func (f *framer) feed(b []byte) {
	for len(b) > 0 {
		switch f.st {
		case fLost:
			return
		case fBody, fChunkData:
			k := uint64(len(b))
			if k > f.remain {
				k = f.remain
			}
			f.remain -= k
			b = b[k:]
			if f.remain == 0 {
				if f.st == fBody {
					f.st = fHead
				} else {
					f.st, f.remain = fChunkEnd, 2
				}
			}
		case fChunkEnd:
			want := byte('\n')
			if f.remain == 2 {
				want = '\r'
			}
			if b[0] != want {
				f.lose()
				return
			}
			b = b[1:]
			if f.remain--; f.remain == 0 {
				f.st = fChunkLine
			}
		default: // line-based: fHead, fChunkLine, fTrailer
			if f.st == fHead && f.cur.lines == 0 && f.nline == 0 {
				// Before a request line net/http skips line ends (after
				// a POST, for old clients; otherwise it refuses them).
				for len(b) > 0 && b[0] == '\r' {
					b = b[1:]
				}
				if len(b) == 0 {
					continue
				}
				f.cur.start = mono()
			}
			seg := b
			i := bytes.IndexByte(b, '\n')
			if i >= 0 {
				seg = b[:i]
				b = b[i+1:]
			} else {
				b = nil
			}
			if len(seg) > 0 {
				if f.nline < lineKeep {
					copy(f.line[f.nline:], seg)
				}
				f.nline += len(seg)
				f.last = seg[len(seg)-1]
				if f.st == fChunkLine {
					f.cr += bytes.Count(seg, []byte{'\r'})
				}
			}
			if i >= 0 {
				f.endLine()
				f.nline, f.last, f.cr = 0, 0, 0
			}
		}
	}
}

// endLine handles a complete line (its '\n' excluded).
func (f *framer) endLine() {
	n := f.nline
	if n > 0 && f.last == '\r' {
		n-- // net/http's line reader drops "\r\n" or "\n"
	}
	kept := f.line[:min(n, lineKeep)]
	switch f.st {
	case fHead:
		f.headLine(n, kept)
	case fChunkLine:
		// net/http: the line must end in CRLF with no other CR; the size is
		// hex digits (at most 16), then either a ';' (an extension) or
		// nothing but spaces and tabs.
		if f.last != '\r' || f.cr != 1 {
			f.lose()
			return
		}
		var size uint64
		d := 0
		for ; d < len(kept) && d <= 16; d++ {
			v := hexVal(kept[d])
			if v < 0 {
				break
			}
			size = size<<4 | uint64(v)
		}
		if d == 0 || d > 16 {
			f.lose()
			return
		}
		if d < n && kept[d] != ';' {
			if n > lineKeep {
				f.lose() // spaces past what is kept: cannot tell
				return
			}
			for _, c := range kept[d:] {
				if c != ' ' && c != '\t' {
					f.lose()
					return
				}
			}
		}
		if size == 0 {
			f.st = fTrailer
		} else {
			f.st, f.remain = fChunkData, size
		}
	case fTrailer:
		if n == 0 {
			f.st = fHead
		}
	}
}

// headLine handles a line of a request head: n is its length without the
// line end, kept its first bytes.
func (f *framer) headLine(n int, kept []byte) {
	c := &f.cur
	c.lines++
	if c.lines == 1 {
		if n == 0 {
			// Line ends before a request line: net/http skips a few
			// after a POST (for old clients) and refuses them otherwise,
			// closing the connection.
			c.lines = 0
			return
		}
		c.lineLen = n
		if n == len(h2Preface) && string(kept) == string(h2Preface) {
			f.h2 = true // HTTP/2 with prior knowledge: not HTTP/1 past this line
			f.lose()
		}
		return
	}
	if n == 0 {
		f.endHead()
		return
	}
	if kept[0] == ' ' || kept[0] == '\t' {
		if f.prev != fieldOther {
			c.folded = true
		}
		return
	}
	f.prev = fieldOther
	switch {
	case hasPrefixFold(kept, clName):
		f.prev = fieldCL
		v, ok := fieldValue(kept[len(clName):], n > lineKeep)
		if !ok || len(v) == 0 || len(v) > 19 {
			c.clBad = true
		} else {
			var x uint64
			for _, d := range v {
				if d < '0' || d > '9' {
					c.clBad = true
					break
				}
				x = x*10 + uint64(d-'0')
			}
			if c.cl && x != c.clValue {
				c.clBad = true // net/http refuses differing values
			}
			c.clValue = x
		}
		c.cl = true
	case hasPrefixFold(kept, teName):
		f.prev = fieldTE
		c.te = true
		c.teCount++
		v, ok := fieldValue(kept[len(teName):], n > lineKeep)
		c.chunked = ok && bytes.EqualFold(v, []byte("chunked"))
	}
}

// endHead queues the head's facts and goes on to its body.
func (f *framer) endHead() {
	c := f.cur
	f.cur, f.prev = headFacts{}, fieldOther
	f.mu.Lock()
	if len(f.heads) >= maxQueuedHeads {
		f.mu.Unlock()
		f.lose()
		return
	}
	f.heads = append(f.heads, c)
	f.mu.Unlock()
	switch {
	case c.te:
		if c.teCount != 1 || !c.chunked {
			f.lose() // net/http answers 501 and closes
			return
		}
		f.st = fChunkLine
	case c.cl:
		if c.clBad || c.clValue > 1<<62 {
			f.lose() // net/http answers 400 and closes
			return
		}
		if c.clValue > 0 {
			f.st, f.remain = fBody, c.clValue
		}
	}
}

// lose stops the framer.
func (f *framer) lose() {
	f.st = fLost
	f.mu.Lock()
	f.lost = true
	f.mu.Unlock()
}

// claim returns the facts of the oldest head not yet claimed. ok is false
// when there is none to claim (the framer is lost or behind).
func (f *framer) claim() (headFacts, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.heads) == 0 {
		return headFacts{}, false
	}
	h := f.heads[0]
	copy(f.heads, f.heads[1:])
	f.heads = f.heads[:len(f.heads)-1]
	return h, true
}

// fieldValue returns a field value with the spaces and tabs around it
// trimmed; ok is false when the value may run past what was kept.
func fieldValue(v []byte, truncated bool) ([]byte, bool) {
	if truncated {
		return nil, false
	}
	return bytes.Trim(v, " \t"), true
}

func hasPrefixFold(b, prefix []byte) bool {
	return len(b) >= len(prefix) && bytes.EqualFold(b[:len(prefix)], prefix)
}

func hexVal(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}
