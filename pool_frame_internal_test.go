package gaffer

import (
	"bufio"
	"bytes"
	"io"
	"testing"

	"github.com/stretchr/testify/require"
)

// Frames read back as written; a frame with a damaged byte, a length
// out of range, or bytes that are no frame at all is an error that names
// the damage, never a payload; a pipe closed between frames is io.EOF.
func TestFramesDetectDamage(t *testing.T) {
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	require.NoError(t, writeFrame(w, frameReply, []byte(`{"out":{"ok":true}}`)))
	require.NoError(t, writeFrame(w, frameStop, nil))
	good := bytes.Clone(buf.Bytes())

	r := bufio.NewReader(bytes.NewReader(good))
	kind, body, err := readFrame(r)
	require.NoError(t, err)
	require.Equal(t, byte(frameReply), kind)
	require.Equal(t, `{"out":{"ok":true}}`, string(body))
	kind, body, err = readFrame(r)
	require.NoError(t, err)
	require.Equal(t, byte(frameStop), kind)
	require.Empty(t, body)
	_, _, err = readFrame(r)
	require.ErrorIs(t, err, io.EOF)

	for i := range len(good) / 2 { // every byte of the first frame
		bad := bytes.Clone(good)
		bad[i] ^= 0x20
		_, _, err := readFrame(bufio.NewReader(bytes.NewReader(bad)))
		require.Error(t, err, "byte %d damaged", i)
		if i >= 4 { // past the length, the checksum catches it
			require.ErrorIs(t, err, errNotFrame, "byte %d damaged", i)
		}
	}
	_, _, err = readFrame(bufio.NewReader(bytes.NewReader([]byte("hello, world\n"))))
	require.ErrorIs(t, err, errNotFrame, "text is not a frame")
	_, _, err = readFrame(bufio.NewReader(bytes.NewReader(good[:12])))
	require.ErrorIs(t, err, io.ErrUnexpectedEOF, "a frame cut short")
}
