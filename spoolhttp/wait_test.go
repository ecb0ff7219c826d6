package spoolhttp_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"mime"
	"mime/multipart"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/spoolkit/spool"
	"github.com/spoolkit/spool/spoolhttp"
)

// diskManager returns a Manager of 4 KiB chunks with 4 chunks of memory
// and 16 of disk, and a buffer that holds 12 of them on disk: a form of
// 40 KiB fits once that buffer is closed, not before.
func diskManager(t *testing.T) (*spool.Manager, *spool.Buffer) {
	t.Helper()
	const blk = 4 << 10
	m := newManager(t, spool.Options{ChunkSize: blk, MemoryBudget: 4 * blk, DiskBudget: 16 * blk})
	hog, _ := m.NewBuffer()
	hog.Write(make([]byte, 12*blk))
	if err := hog.Rollover(); err != nil {
		t.Fatal(err)
	}
	return m, hog
}

// boundaryOf returns the boundary of a multipart Content-Type.
func boundaryOf(t *testing.T, contentType string) string {
	t.Helper()
	_, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		t.Fatal(err)
	}
	return params["boundary"]
}

// untilWaiting waits until a write waits for disk budget in m.
func untilWaiting(t *testing.T, m *spool.Manager) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for m.Stats().DiskWaiters == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no write waiting for disk budget after a minute")
		}
		runtime.Gosched()
	}
}

// TestWaitForDisk: with Limits.WaitForDisk, a form whose file needs more
// disk than is left waits, and is read whole once a Close frees room;
// without it, the form fails at once with spool.ErrDiskBudget (507); a
// wait ends with the request's context, with an error wrapping both
// ErrDiskBudget and the context's, and the form's Buffers closed.
func TestWaitForDisk(t *testing.T) {
	file := randBytes(rand.New(rand.NewPCG(3, 4)), 40<<10)
	body, ct := formBody(t, part{name: "upload", filename: "big.bin", body: file})

	t.Run("no wait", func(t *testing.T) {
		m, hog := diskManager(t)
		defer hog.Close()
		_, err := readForm(body, ct, m, spoolhttp.Limits{})
		if !errors.Is(err, spool.ErrDiskBudget) || spoolhttp.StatusCode(err) != http.StatusInsufficientStorage {
			t.Fatalf("form past the disk budget: %v (status %d); want ErrDiskBudget, 507", err, spoolhttp.StatusCode(err))
		}
	})

	t.Run("wait", func(t *testing.T) {
		m, hog := diskManager(t)
		type result struct {
			f   *spoolhttp.Form
			err error
		}
		done := make(chan result)
		go func() {
			f, err := readForm(body, ct, m, spoolhttp.Limits{WaitForDisk: true})
			done <- result{f, err}
		}()
		untilWaiting(t, m)
		hog.Close()
		r := <-done
		if r.err != nil {
			t.Fatalf("form that waited for disk: %v", r.err)
		}
		defer r.f.RemoveAll()
		if got := contents(t, r.f.File["upload"][0]); !bytes.Equal(got, file) {
			t.Errorf("file read back: %d bytes, want the %d sent", len(got), len(file))
		}
	})

	t.Run("context", func(t *testing.T) {
		m, hog := diskManager(t)
		defer hog.Close()
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "POST", "/", bytes.NewReader(body))
		req.Header.Set("Content-Type", ct)
		done := make(chan error)
		go func() {
			_, err := spoolhttp.ParseMultipartForm(req, m, spoolhttp.Limits{WaitForDisk: true})
			done <- err
		}()
		untilWaiting(t, m)
		cancel()
		err := <-done
		if !errors.Is(err, spool.ErrDiskBudget) || !errors.Is(err, context.Canceled) {
			t.Fatalf("form whose request ended while it waited: %v; want ErrDiskBudget and context.Canceled", err)
		}
		if st := m.Stats(); st.Buffers != 1 || st.DiskWaiters != 0 {
			t.Errorf("after the wait ended: %d buffers (want the hog only), %d waiters", st.Buffers, st.DiskWaiters)
		}
	})

	t.Run("ReadFormContext", func(t *testing.T) {
		m, hog := diskManager(t)
		defer hog.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := spoolhttp.ReadFormContext(ctx, multipart.NewReader(bytes.NewReader(body), boundaryOf(t, ct)), m, spoolhttp.Limits{WaitForDisk: true})
		if !errors.Is(err, spool.ErrDiskBudget) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("ReadFormContext past its deadline: %v; want ErrDiskBudget and DeadlineExceeded", err)
		}
		//lint:ignore SA1012 the nil Context is what is tested
		if _, err := spoolhttp.ReadFormContext(nil, multipart.NewReader(bytes.NewReader(body), boundaryOf(t, ct)), m, spoolhttp.Limits{}); !errors.Is(err, spool.ErrInvalid) {
			t.Errorf("ReadFormContext(nil, ...) = %v; want ErrInvalid", err)
		}
	})
}
