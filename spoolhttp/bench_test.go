package spoolhttp_test

import (
	"bytes"
	"fmt"
	"mime/multipart"
	"testing"

	"github.com/spoolkit/spool"
	"github.com/spoolkit/spool/spoolhttp"
)

// BenchmarkReadForm reads a form with one 16 MiB file from memory (a fast
// source: what a client on a fast link sends) into a Manager whose budget
// holds it, and into one whose budget is a quarter of it, so that it
// spills. Compare with BenchmarkReadForm/multipart, mime/multipart's own
// ReadForm with the same limit of memory, which spills to a temporary
// file of its own.
func BenchmarkReadForm(b *testing.B) {
	const size = 16 << 20
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i*7 + i>>9)
	}
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	fw, err := w.CreateFormFile("file", "upload.bin")
	if err != nil {
		b.Fatal(err)
	}
	fw.Write(data)
	w.Close()
	form := body.Bytes()
	// run reads the form b.N times with read, which returns the size of
	// the file it read and the function that removes the form.
	run := func(b *testing.B, read func() (int64, func() error, error)) {
		b.SetBytes(size)
		for b.Loop() {
			got, removeAll, err := read()
			if err != nil {
				b.Fatal(err)
			}
			if got != size {
				b.Fatalf("file of %d bytes, want %d", got, size)
			}
			if err := removeAll(); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, budget := range []int64{64 << 20, 4 << 20} {
		b.Run(fmt.Sprintf("spool/budget=%dMiB", budget>>20), func(b *testing.B) {
			m := newManager(b, spool.Options{MemoryBudget: budget})
			run(b, func() (int64, func() error, error) {
				f, err := spoolhttp.ReadForm(multipart.NewReader(bytes.NewReader(form), w.Boundary()), m, spoolhttp.Limits{})
				if err != nil {
					return 0, nil, err
				}
				return f.File["file"][0].Size, f.RemoveAll, nil
			})
		})
		b.Run(fmt.Sprintf("multipart/maxMemory=%dMiB", budget>>20), func(b *testing.B) {
			run(b, func() (int64, func() error, error) {
				f, err := multipart.NewReader(bytes.NewReader(form), w.Boundary()).ReadForm(budget)
				if err != nil {
					return 0, nil, err
				}
				return f.File["file"][0].Size, f.RemoveAll, nil
			})
		})
	}
}
