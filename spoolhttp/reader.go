package spoolhttp

import (
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
)

// A limitReader reads from a request body, or a part of one, while
// counting the bytes it returns into *n, which several limitReaders may
// share (the parts of one form). Once *n passes max (if max >= 0) it
// returns an error wrapping ErrTooLarge that says what passed it
// (exceeds: "body exceeds", "form contents exceed"), made only then. It
// wraps every other error of r, io.EOF aside, in a readError, so that
// callers can tell the request's errors from those of the Buffer it is
// copied into.
type limitReader struct {
	r       io.Reader
	n       *int64
	max     int64 // -1: no limit
	exceeds string
}

// tooLarge returns the error of a read past the limit.
func (l *limitReader) tooLarge() error {
	return fmt.Errorf("%w: %s %d bytes", ErrTooLarge, l.exceeds, l.max)
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.max >= 0 {
		if *l.n > l.max {
			return 0, l.tooLarge()
		}
		// Read at most one byte past the limit: enough to see it passed.
		if rem := l.max - *l.n; rem < int64(len(p)) {
			p = p[:rem+1]
		}
	}
	n, err := l.r.Read(p)
	*l.n += int64(n)
	if l.max >= 0 && *l.n > l.max {
		return n, l.tooLarge()
	}
	if err != nil && err != io.EOF {
		err = &readError{err}
	}
	return n, err
}

// readError is an error met reading the request, as opposed to one of
// spool.
type readError struct{ err error }

func (e *readError) Error() string { return e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

// requestError returns the error to report for err, an error of
// mime/multipart or of reading the request body: ErrTooLarge for an
// *http.MaxBytesError, ErrHeaderTooLarge for multipart.ErrMessageTooLarge,
// ErrMalformed for anything else; each wraps err.
func requestError(err error) error {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return fmt.Errorf("%w: %w", ErrTooLarge, err)
	case errors.Is(err, multipart.ErrMessageTooLarge):
		return fmt.Errorf("%w: %w", ErrHeaderTooLarge, err)
	}
	return fmt.Errorf("%w: %w", ErrMalformed, err)
}

// copyError returns the error to report for err, returned by a copy from
// a limitReader into a Buffer, what naming the destination: a readError
// becomes a requestError; the limit's own error is returned as is; any
// other error is the Buffer's (spool's) and is wrapped with what.
func copyError(err error, what string) error {
	var re *readError
	switch {
	case errors.As(err, &re):
		return requestError(re.err)
	case errors.Is(err, ErrTooLarge):
		return err
	}
	return fmt.Errorf("spoolhttp: spooling %s: %w", what, err)
}

// fullReader fills each Read's p unless its source ends first, so that
// Buffer.ReadFrom writes whole 64 KiB pieces rather than the few KiB a
// multipart.Part or a request body returns at a time. Its source is a limitReader, whose
// errors other than io.EOF are never io.ErrUnexpectedEOF.
type fullReader struct{ r io.Reader }

func (f fullReader) Read(p []byte) (int, error) {
	n, err := io.ReadFull(f.r, p)
	if err == io.ErrUnexpectedEOF {
		err = io.EOF
	}
	return n, err
}
