package parse

import (
	"bytes"
	"errors"

	"github.com/tailship/tailship/pipeline"
)

// criParser reads the CRI log format that containerd and CRI-O write under
// /var/log/pods: `<time> <stream> <tags> <message>`, tags being P (partial:
// the runtime split a long line and more follows) or F (full), optionally
// followed by more ":"-separated tags. Fields: time, stream, message, and
// partial = true on a P line (the joiner merges those, so the field is seen
// only on a piece that could not be joined).
type criParser struct{}

var (
	errCRIFields = errors.New("cri: expected `<time> <stream> <P|F> <message>`")
	errCRIStream = errors.New("cri: stream must be stdout or stderr")
	errCRITag    = errors.New("cri: tag must be P or F")
)

func (criParser) Parse(ev *pipeline.Event, a *pipeline.Arena) error {
	ts, stream, partial, msg, err := splitCRI(ev.Raw)
	if err != nil {
		return err
	}
	a.Add("time", a.Text(ts))
	a.Add("stream", a.Text(stream))
	a.Add("message", a.Text(msg))
	if partial {
		a.Add("partial", true)
	}
	return nil
}

func splitCRI(b []byte) (ts, stream []byte, partial bool, msg []byte, err error) {
	i := bytes.IndexByte(b, ' ')
	if i <= 0 {
		return nil, nil, false, nil, errCRIFields
	}
	ts, b = b[:i], b[i+1:]
	if i = bytes.IndexByte(b, ' '); i < 0 {
		return nil, nil, false, nil, errCRIFields
	}
	stream, b = b[:i], b[i+1:]
	if string(stream) != "stdout" && string(stream) != "stderr" {
		return nil, nil, false, nil, errCRIStream
	}
	// The message may be empty, and then the line ends after the tags.
	i = bytes.IndexByte(b, ' ')
	tags := b
	if i >= 0 {
		tags, msg = b[:i], b[i+1:]
	}
	if j := bytes.IndexByte(tags, ':'); j >= 0 {
		tags = tags[:j]
	}
	switch string(tags) {
	case "P":
		partial = true
	case "F":
	default:
		return nil, nil, false, nil, errCRITag
	}
	return ts, stream, partial, msg, nil
}
