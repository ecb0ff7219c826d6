package spool_test

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"log"
	"os"
	"strings"

	"github.com/spoolkit/spool"
)

// Example shows the basic use: a Manager hands out Buffers that behave like
// files and share one memory budget.
func Example() {
	dir, err := os.MkdirTemp("", "spool-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	m, err := spool.NewManager(spool.Options{
		MemoryBudget: 1 << 20, // 1 MiB for all buffers together
		ChunkSize:    4096,
		TempDir:      dir,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	b, err := m.NewBuffer()
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()

	if _, err := b.Write([]byte("hello, spool")); err != nil {
		log.Fatal(err)
	}
	if _, err := b.Seek(7, io.SeekStart); err != nil {
		log.Fatal(err)
	}
	p := make([]byte, 16)
	n, err := b.Read(p)
	fmt.Printf("read %d bytes: %q, err %v\n", n, p[:n], err)
	_, err = b.Read(p)
	fmt.Println("at the end:", err)

	st := m.Stats()
	fmt.Println("size:", b.Size(), "on disk:", b.OnDisk())
	fmt.Println("buffers:", st.Buffers, "memory in use:", st.MemoryInUse, "of", st.MemoryBudget)
	// Output:
	// read 5 bytes: "spool", err <nil>
	// at the end: EOF
	// size: 12 on disk: false
	// buffers: 1 memory in use: 4096 of 1048576
}

// ExampleBuffer_Rollover moves a buffer's data to disk explicitly; its
// memory goes back to the budget and the data stays readable.
func ExampleBuffer_Rollover() {
	dir, err := os.MkdirTemp("", "spool-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	m, err := spool.NewManager(spool.Options{
		ChunkSize: 4096,
		TempDir:   dir,
		OnSpill: func(ev spool.SpillEvent) {
			fmt.Printf("spill: buffer %d, reason %v, moved %d bytes\n", ev.Buffer, ev.Reason, ev.Moved)
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	b, err := m.NewBuffer()
	if err != nil {
		log.Fatal(err)
	}
	if _, err := b.Write(bytes.Repeat([]byte("spool "), 1000)); err != nil {
		log.Fatal(err)
	}
	fmt.Println("before: on disk", b.OnDisk(), "memory", m.Stats().MemoryInUse)

	if err := b.Rollover(); err != nil {
		log.Fatal(err)
	}
	st := m.Stats()
	fmt.Println("after: on disk", b.OnDisk(), "memory", st.MemoryInUse, "spills", st.Spills)

	p := make([]byte, 11)
	if _, err := b.ReadAt(p, 5994); err != nil && err != io.EOF {
		log.Fatal(err)
	}
	fmt.Printf("tail: %q\n", p[:6])
	// Output:
	// before: on disk false memory 8192
	// spill: buffer 1, reason Requested, moved 6000 bytes
	// after: on disk true memory 0 spills 1
	// tail: "spool "
}

// Example_zip builds a zip archive in a Buffer with a small memory budget,
// so that it rolls over to disk as it grows, and reads it back: a Buffer
// is an io.Writer for zip.NewWriter and an io.ReaderAt for zip.NewReader.
func Example_zip() {
	dir, err := os.MkdirTemp("", "spool-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	m, err := spool.NewManager(spool.Options{
		MemoryBudget:    16 << 10,
		ChunkSize:       4096,
		BufferThreshold: 10000,
		TempDir:         dir,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	b, err := m.NewBuffer()
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()

	files := []struct{ name, body string }{
		{"readme.txt", "spool keeps small buffers in memory"},
		{"big.txt", string(bytes.Repeat([]byte("0123456789abcdef"), 4096))},
		{"notes.txt", "and spills big ones to disk"},
	}
	zw := zip.NewWriter(b)
	for _, f := range files {
		// Store, not Deflate, so that the archive outgrows the threshold.
		w, err := zw.CreateHeader(&zip.FileHeader{Name: f.name, Method: zip.Store})
		if err != nil {
			log.Fatal(err)
		}
		if _, err := io.WriteString(w, f.body); err != nil {
			log.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		log.Fatal(err)
	}
	fmt.Println("archive on disk:", b.OnDisk())

	zr, err := zip.NewReader(b, b.Size())
	if err != nil {
		log.Fatal(err)
	}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			log.Fatal(err)
		}
		body, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			log.Fatal(err)
		}
		if len(body) > 40 {
			fmt.Printf("%s: %d bytes\n", f.Name, len(body))
		} else {
			fmt.Printf("%s: %s\n", f.Name, body)
		}
	}
	// Output:
	// archive on disk: true
	// readme.txt: spool keeps small buffers in memory
	// big.txt: 65536 bytes
	// notes.txt: and spills big ones to disk
}

// ExampleManager spools an upload (here a string reader standing in for a
// request body) into a Buffer, then reads it back to checksum it. The same
// code is in the README.
func ExampleManager() {
	m, err := spool.NewManager(spool.Options{MemoryBudget: 64 << 20}) // 64 MiB for all buffers
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	body := strings.NewReader(strings.Repeat("upload ", 1000))

	buf, err := m.NewBuffer()
	if err != nil {
		log.Fatal(err)
	}
	defer buf.Close()
	if _, err := io.Copy(buf, body); err != nil { // in memory, or on disk if memory is short
		log.Fatal(err)
	}

	if _, err := buf.Seek(0, io.SeekStart); err != nil {
		log.Fatal(err)
	}
	sum := sha256.New()
	if _, err := io.Copy(sum, buf); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d bytes, sha256 %x...\n", buf.Size(), sum.Sum(nil)[:4])
	fmt.Println("within budget:", m.Stats().MemoryInUse <= 64<<20)
	// Output:
	// 7000 bytes, sha256 2856b515...
	// within budget: true
}
