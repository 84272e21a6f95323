package gaffer

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// A pool worker and its leader talk over pipes in frames: the payload's
// length (4 bytes, little-endian), its CRC-32C (4 bytes), then the
// payload, whose first byte says what it is. Anything else on the pipe (a
// job that found a way to write to the worker's real standard output)
// fails the length or the checksum, and the worker is taken as broken:
// its attempt fails and is retried, never given a wrong result.
const (
	frameJob     = 'j' // leader to worker: an envelope (JSON)
	frameStop    = 's' // leader to worker: stop the service of this issue number (8 bytes)
	frameReply   = 'r' // worker to leader: a poolReply (JSON)
	frameStarted = 'v' // worker to leader: a service's startReport (JSON)
)

// maxFrame bounds a frame: an outcome holds the graph a job made, which
// can be large (a million children), but not this large.
const maxFrame = 1 << 30

var errNotFrame = errors.New("not a frame: the channel is damaged (did something write to the worker's standard output?)")

// writeFrame writes one frame and flushes it.
func writeFrame(w *bufio.Writer, kind byte, body []byte) error {
	var h [9]byte
	binary.LittleEndian.PutUint32(h[0:], uint32(len(body)+1))
	sum := crc32.Update(crc32.Checksum([]byte{kind}, castagnoli), castagnoli, body)
	binary.LittleEndian.PutUint32(h[4:], sum)
	h[8] = kind
	if _, err := w.Write(h[:]); err != nil {
		return err
	}
	if _, err := w.Write(body); err != nil {
		return err
	}
	return w.Flush()
}

// readFrame reads one frame: its kind and body. io.EOF means the other
// side closed the pipe between frames.
func readFrame(r *bufio.Reader) (byte, []byte, error) {
	var h [8]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := binary.LittleEndian.Uint32(h[0:])
	if n == 0 || n > maxFrame {
		return 0, nil, fmt.Errorf("frame of %d bytes: %w", n, errNotFrame)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	if got, want := crc32.Checksum(p, castagnoli), binary.LittleEndian.Uint32(h[4:]); got != want {
		return 0, nil, fmt.Errorf("checksum mismatch (sent %08x, computed %08x): %w", want, got, errNotFrame)
	}
	return p[0], p[1:], nil
}
