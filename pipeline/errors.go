package pipeline

import (
	"errors"
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
