package pluginpb

import (
	"encoding/binary"
	"io"
	"runtime"
	"sync"

	"google.golang.org/protobuf/proto"
)

// FrameWriter writes the frames of the framed call socket, both ends'. A
// frame sent while others are coming (Send's later) is not written at
// once: its sender yields first, so that the goroutines ready to run add
// their frames, and then writes them all with one system call. On a busy
// gateway many calls are made in the same scheduling round; each write
// wakes the other process, and where the two share a CPU that is two
// context switches, which cost more than the call's own work. Coalesced,
// the other end reads the frames with one read and answers them with one
// write.
//
// Frames are never interleaved: one goroutine at a time writes, and the
// frames added meanwhile go out with its next write. A write that fails
// fails every later Send; frames added but not yet written are dropped
// with it (the connection is broken: both ends drop it).
type FrameWriter struct {
	w     io.Writer
	mu    sync.Mutex
	buf   []byte // frames added, not yet written
	spare []byte // the buffer of the write in progress, for reuse
	// flushing is set while a sender yields or writes: frames added
	// meanwhile are its to write.
	flushing bool
	err      error
}

// NewFrameWriter returns a FrameWriter of w.
func NewFrameWriter(w io.Writer) *FrameWriter { return &FrameWriter{w: w} }

// Send adds m as one frame and writes it, with the frames added before it
// that are not written yet (CallRequest and CallResponse are encoded
// without reflection, see appendFast). When later is true (other calls are in
// flight, and more frames are likely to come in this scheduling round),
// the writing waits until the goroutines ready to run have run. When a
// write is already due, Send only adds the frame: that write takes it, and
// a failure of it reaches the sender through the connection's end.
func (fw *FrameWriter) Send(m proto.Message, later bool) error {
	fw.mu.Lock()
	if fw.err != nil {
		err := fw.err
		fw.mu.Unlock()
		return err
	}
	start := len(fw.buf)
	b, ok := appendFast(append(fw.buf, 0, 0, 0, 0), m)
	var err error
	if ok {
		binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-4))
	} else {
		b, err = AppendFrame(b[:start], m)
	}
	if err != nil {
		fw.buf = b[:start]
		fw.mu.Unlock()
		return err
	}
	fw.buf = b
	if fw.flushing {
		fw.mu.Unlock()
		return nil
	}
	fw.flushing = true
	fw.mu.Unlock()
	if later {
		runtime.Gosched()
	}
	return fw.flush()
}

// flush writes the frames added until there are none left, then ends the
// flushing.
func (fw *FrameWriter) flush() error {
	fw.mu.Lock()
	for len(fw.buf) > 0 {
		b := fw.buf
		fw.buf = fw.spare[:0]
		fw.mu.Unlock()
		_, err := fw.w.Write(b)
		fw.mu.Lock()
		fw.spare = b[:0]
		if err != nil {
			fw.err, fw.buf, fw.flushing = err, fw.buf[:0], false
			fw.mu.Unlock()
			return err
		}
	}
	fw.flushing = false
	fw.mu.Unlock()
	return nil
}
