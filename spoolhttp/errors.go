package spoolhttp

import (
	"errors"
	"mime/multipart"
	"net/http"
	"syscall"

	"github.com/spoolkit/spool"
)

// Errors returned by this package. They are returned wrapped, with details
// in the message and often with the error that caused them (errors.As to
// *http.MaxBytesError works, for instance), so test them with errors.Is.
// StatusCode maps them to HTTP statuses.
var (
	// ErrTooManyParts is returned by ReadForm for a form with more than
	// Limits.MaxParts parts.
	ErrTooManyParts = errors.New("spoolhttp: too many parts")

	// ErrHeaderTooLarge is returned by ReadForm when the MIME headers of
	// the parts of a form together exceed Limits.MaxHeaderBytes, or when
	// mime/multipart itself rejects a part's header as too large
	// (multipart.ErrMessageTooLarge, which it also wraps).
	ErrHeaderTooLarge = errors.New("spoolhttp: part headers too large")

	// ErrTooLarge is returned by ReadForm when the contents of a form's
	// parts together exceed Limits.MaxTotalBytes, and by ReadBody and
	// SpoolBody when a body exceeds their maxBytes. It also wraps an
	// *http.MaxBytesError met while reading, if any.
	ErrTooLarge = errors.New("spoolhttp: request body too large")

	// ErrValuesTooLarge is returned by ReadForm when the values kept in
	// memory (Form.Value) together exceed Limits.MaxValueBytes.
	ErrValuesTooLarge = errors.New("spoolhttp: form values too large")

	// ErrMalformed is returned when a request body cannot be read or
	// parsed: a malformed or truncated multipart body, a multipart
	// Content-Type without a boundary, a body cut short by the client. It
	// wraps the error of mime/multipart or of the body.
	ErrMalformed = errors.New("spoolhttp: malformed request body")

	// ErrNotMultipart is returned by ParseMultipartForm for a request whose
	// Content-Type is not multipart/form-data.
	ErrNotMultipart = errors.New("spoolhttp: Content-Type is not multipart/form-data")
)

// StatusCode returns the HTTP status code that suits err as the response to
// the request whose handling failed with it:
//
//   - 200 OK for nil;
//   - 413 Content Too Large for ErrTooManyParts, ErrHeaderTooLarge,
//     ErrTooLarge, ErrValuesTooLarge, *http.MaxBytesError and
//     multipart.ErrMessageTooLarge;
//   - 400 Bad Request for ErrMalformed and http.ErrMissingBoundary;
//   - 415 Unsupported Media Type for ErrNotMultipart and http.ErrNotMultipart;
//   - 507 Insufficient Storage for spool.ErrDiskBudget, syscall.ENOSPC and
//     syscall.EDQUOT: the server is out of disk, not the client at fault;
//   - 500 Internal Server Error for anything else.
//
// The first matching rule wins, in this order: an error that is both too
// large and malformed (a body cut short by http.MaxBytesReader) gives 413,
// and a request error wrapping a spool error gives the request's status.
func StatusCode(err error) int {
	var mbe *http.MaxBytesError
	switch {
	case err == nil:
		return http.StatusOK
	case errors.Is(err, ErrTooManyParts), errors.Is(err, ErrHeaderTooLarge),
		errors.Is(err, ErrTooLarge), errors.Is(err, ErrValuesTooLarge),
		errors.As(err, &mbe), errors.Is(err, multipart.ErrMessageTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrMalformed), errors.Is(err, http.ErrMissingBoundary):
		return http.StatusBadRequest
	case errors.Is(err, ErrNotMultipart), errors.Is(err, http.ErrNotMultipart):
		return http.StatusUnsupportedMediaType
	case errors.Is(err, spool.ErrDiskBudget), errors.Is(err, syscall.ENOSPC),
		errors.Is(err, syscall.EDQUOT):
		return http.StatusInsufficientStorage
	}
	return http.StatusInternalServerError
}
