package spoolhttp_test

import (
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/spoolkit/spool"
	"github.com/spoolkit/spool/spoolhttp"
)

func TestStatusCode(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("context: %w", err) }
	enospc := &os.PathError{Op: "write", Path: "/tmp/spool-1", Err: syscall.ENOSPC}
	tests := []struct {
		err  error
		want int
	}{
		{nil, http.StatusOK},
		{wrap(spoolhttp.ErrTooManyParts), http.StatusRequestEntityTooLarge},
		{wrap(spoolhttp.ErrHeaderTooLarge), http.StatusRequestEntityTooLarge},
		{wrap(spoolhttp.ErrTooLarge), http.StatusRequestEntityTooLarge},
		{wrap(spoolhttp.ErrValuesTooLarge), http.StatusRequestEntityTooLarge},
		{wrap(&http.MaxBytesError{Limit: 10}), http.StatusRequestEntityTooLarge},
		{wrap(multipart.ErrMessageTooLarge), http.StatusRequestEntityTooLarge},
		{wrap(spoolhttp.ErrNotMultipart), http.StatusUnsupportedMediaType},
		{http.ErrNotMultipart, http.StatusUnsupportedMediaType},
		{wrap(spoolhttp.ErrMalformed), http.StatusBadRequest},
		{http.ErrMissingBoundary, http.StatusBadRequest},
		{wrap(spool.ErrDiskBudget), http.StatusInsufficientStorage},
		{wrap(enospc), http.StatusInsufficientStorage},
		{wrap(syscall.EDQUOT), http.StatusInsufficientStorage},
		{wrap(spool.ErrClosed), http.StatusInternalServerError},
		{wrap(spool.ErrCorrupt), http.StatusInternalServerError},
		{io.ErrUnexpectedEOF, http.StatusInternalServerError},
		{errors.New("other"), http.StatusInternalServerError},
		// Too large wins over malformed, whatever the order.
		{errors.Join(spoolhttp.ErrMalformed, &http.MaxBytesError{Limit: 1}), http.StatusRequestEntityTooLarge},
		{errors.Join(spool.ErrDiskBudget, spoolhttp.ErrMalformed), http.StatusBadRequest},
	}
	for _, tt := range tests {
		if got := spoolhttp.StatusCode(tt.err); got != tt.want {
			t.Errorf("StatusCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func TestError(t *testing.T) {
	w := httptest.NewRecorder()
	spoolhttp.Error(w, fmt.Errorf("%w: more than 3", spoolhttp.ErrTooManyParts))
	if w.Code != http.StatusRequestEntityTooLarge || !strings.Contains(w.Body.String(), "more than 3") {
		t.Errorf("client error: %d %q", w.Code, w.Body)
	}
	w = httptest.NewRecorder()
	spoolhttp.Error(w, fmt.Errorf("spooling: %w", &os.PathError{Op: "write", Path: "/secret/spool-1", Err: syscall.ENOSPC}))
	if w.Code != http.StatusInsufficientStorage || strings.Contains(w.Body.String(), "secret") {
		t.Errorf("server error: %d %q", w.Code, w.Body)
	}
}
