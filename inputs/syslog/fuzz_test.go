package syslog

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
	"testing"
)

var framings = []string{"auto", "newline", "octet_counted"}

// FuzzReadFrame feeds arbitrary bytes through the TCP framer as serve
// does. A sender controls every byte of the stream, so the framer must
// never panic, never hand on a frame above max_line_bytes, and always make
// progress. The same bytes, cut into messages and octet-counted, must come
// back as those messages: that is the framing a relay relies on.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte("<13>1 - h a - - - one\n<13>1 - h a - - - two\n"), uint8(0), uint16(0))
	f.Add([]byte("5 hello6 world!"), uint8(2), uint16(0))
	f.Add([]byte("3 abc\n\r\n4 defg"), uint8(0), uint16(0))
	f.Add([]byte("99999999999 x"), uint8(2), uint16(4))
	f.Add([]byte("12 short"), uint8(0), uint16(100))
	f.Add([]byte("line without newline"), uint8(1), uint16(3))
	f.Add([]byte("crlf\r\nlines\r\n\r\n"), uint8(1), uint16(0))
	f.Add([]byte("20 a message longer than max"), uint8(2), uint16(1))
	f.Fuzz(func(t *testing.T, data []byte, framing uint8, max uint16) {
		// max_line_bytes is at least 16 (validated); the small end is
		// where cuts happen.
		maxLine := 16 + int(max%512)
		fr := framings[int(framing)%len(framings)]
		frames := readAll(t, data, fr, maxLine)
		for i, m := range frames {
			if len(m) > maxLine {
				t.Fatalf("%s frame %d is %d bytes, above max_line_bytes %d", fr, i, len(m), maxLine)
			}
		}

		// Round trip: data split at '|' into messages, octet-counted.
		var (
			stream bytes.Buffer
			want   [][]byte
		)
		for _, m := range bytes.Split(data, []byte("|")) {
			stream.WriteString(strconv.Itoa(len(m)))
			stream.WriteByte(' ')
			stream.Write(m)
			// The framer cuts to max_line_bytes, then drops one trailing
			// newline (senders that terminate frames, or a cut that
			// ends on one: downstream it would be an empty line); an
			// empty message adds nothing.
			m = bytes.TrimSuffix(m[:min(len(m), maxLine)], []byte("\n"))
			if len(m) > 0 {
				want = append(want, m)
			}
		}
		for _, fr := range []string{"auto", "octet_counted"} {
			got := readAll(t, stream.Bytes(), fr, maxLine)
			if len(got) != len(want) {
				t.Fatalf("%s: %d frames back from %d messages: %q, want %q", fr, len(got), len(want), got, want)
			}
			for i := range want {
				if !bytes.Equal(got[i], want[i]) {
					t.Fatalf("%s frame %d = %q, want %q", fr, i, got[i], want[i])
				}
			}
		}
	})
}

// readAll frames data the way serve does, through a small bufio.Reader so
// messages span its buffer, and returns the messages; a framing error ends
// the stream as it ends the connection.
func readAll(t *testing.T, data []byte, framing string, maxLine int) [][]byte {
	t.Helper()
	r := bytes.NewReader(data)
	br := bufio.NewReaderSize(r, 16)
	var (
		buf    []byte
		frames [][]byte
	)
	for calls := 0; ; calls++ {
		// Every call that returns no error consumes at least one byte,
		// else the connection's reader would spin.
		if calls > len(data)+1 {
			t.Fatalf("%s: %d calls for %d bytes: the framer makes no progress", framing, calls, len(data))
		}
		start := len(buf)
		var err error
		buf, _, err = readFrame(br, framing, maxLine, buf)
		if len(buf) > start {
			frames = append(frames, bytes.Clone(buf[start:]))
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, errFraming) {
				t.Fatalf("%s: unexpected error %v", framing, err)
			}
			return frames
		}
	}
}
