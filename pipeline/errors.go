package pipeline

import (
	"errors"
	"fmt"
	"time"
)

// permanentError marks an output error that retrying cannot fix (a 400, a
// record too large): the batch is counted as rejected and not retried.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent wraps err so the runner does not retry it.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// IsPermanent reports whether err was marked Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// throttleError asks the runner to wait a given time before the next attempt
// (an HTTP Retry-After).
type throttleError struct {
	err   error
	after time.Duration
}

func (e *throttleError) Error() string { return e.err.Error() }
func (e *throttleError) Unwrap() error { return e.err }

// Throttle wraps err with the delay the receiver asked for.
func Throttle(err error, after time.Duration) error {
	if err == nil {
		return nil
	}
	return &throttleError{err, after}
}

// RetryAfter returns the delay carried by a Throttle error.
func RetryAfter(err error) (time.Duration, bool) {
	var t *throttleError
	if errors.As(err, &t) {
		return t.after, true
	}
	return 0, false
}

// PartialError reports a batch that the receiver took only in part, the way
// an Elasticsearch _bulk response does: the events not named here were
// delivered; those in Retry are written again (alone, with the usual
// backoff); those in Rejected are rejected permanently and go to the
// dead-letter file (or are counted as lost). Indices count the events in the
// order Batch.All yields them, starting at 0.
//
// It exists so that a batch of 5,000 events with one invalid document is not
// retried whole forever, and so that a receiver that accepted 4,990 events is
// not sent them again: retry and loss accounting stay in the runner, where
// they are for every other output.
type PartialError struct {
	Retry    []int       // events to send again, ascending
	Rejected []Rejection // events rejected permanently, ascending by Index
	Err      error       // what went wrong, for logs; may be a Throttle
}

// Rejection is one event a receiver refused permanently, and why.
type Rejection struct {
	Index  int
	Reason string
}

func (e *PartialError) Error() string {
	msg := fmt.Sprintf("%d events to retry, %d rejected", len(e.Retry), len(e.Rejected))
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *PartialError) Unwrap() error { return e.Err }
