package spool_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log"
	"strings"
	"sync"
	"time"

	"github.com/spoolkit/spool"
)

// Example shows the basic use: a Manager hands out Buffers that behave like
// files and share one memory budget.
func Example() {

	m, err := spool.NewManager(spool.Options{
		MemoryBudget: 1 << 20, // 1 MiB for all buffers together
		ChunkSize:    4096,
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
	// buffers: 1 memory in use: 256 of 1048576
}

// ExampleBuffer_Rollover moves a buffer's data to disk explicitly; its
// memory goes back to the budget and the data stays readable.
func ExampleBuffer_Rollover() {

	m, err := spool.NewManager(spool.Options{
		ChunkSize: 4096,
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
	// before: on disk false memory 6144
	// spill: buffer 1, reason Requested, moved 6000 bytes
	// after: on disk true memory 0 spills 1
	// tail: "spool "
}

// Example_zip builds a zip archive in a Buffer with a small memory budget,
// so that it rolls over to disk as it grows, and reads it back: a Buffer
// is an io.Writer for zip.NewWriter and an io.ReaderAt for zip.NewReader.
func Example_zip() {

	m, err := spool.NewManager(spool.Options{
		MemoryBudget:    16 << 10,
		ChunkSize:       4096,
		BufferThreshold: 10000,
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

// Example_blobCache keeps many blobs of varying size in Buffers of one
// Manager with the LeastFrequentlyUsed policy: the blobs read most often
// per byte stay in memory, the rest wait on disk, and a hot blob that was
// spilled comes back into memory by itself.
func Example_blobCache() {
	m, err := spool.NewManager(spool.Options{
		MemoryBudget: 64 << 10, // room for about a fifth of the blobs
		ChunkSize:    4096,
		Policy:       spool.LeastFrequentlyUsed,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	cache := map[string]*spool.Buffer{}
	for i := range 20 {
		b, err := m.NewBuffer()
		if err != nil {
			log.Fatal(err)
		}
		b.Write(bytes.Repeat([]byte{byte(i)}, 16<<10))
		cache[fmt.Sprint("blob", i)] = b
	}
	// blob0 was written first and went to disk; then it becomes popular.
	hot := cache["blob0"]
	fmt.Println("blob0 on disk:", hot.OnDisk())
	p := make([]byte, 16<<10)
	for i := 0; hot.OnDisk() && i < 1e6; i++ {
		hot.ReadAt(p, 0) // each read counts; the Manager promotes it
	}
	fmt.Println("blob0 on disk after it became hot:", hot.OnDisk())
	fmt.Println("promotions:", m.Stats().Promotions)
	// Output:
	// blob0 on disk: true
	// blob0 on disk after it became hot: false
	// promotions: 1
}

// Example_workerPool processes uploads with a pool of workers: each upload
// is spooled into a Buffer, however large, while all of them together stay
// within one memory budget; the workers read the Buffers back as files.
func Example_workerPool() {
	m, err := spool.NewManager(spool.Options{MemoryBudget: 256 << 10, ChunkSize: 4096})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	jobs := make(chan *spool.Buffer)
	sizes := make(chan int64)
	var wg sync.WaitGroup
	for range 4 { // the workers
		wg.Go(func() {
			for b := range jobs {
				b.Seek(0, io.SeekStart)
				n, _ := io.Copy(io.Discard, b) // process the upload
				b.Close()
				sizes <- n
			}
		})
	}
	go func() {
		for range 10 { // the uploads: 10 × 100 KiB through a 256 KiB budget
			b, err := m.NewBuffer()
			if err != nil {
				log.Fatal(err)
			}
			b.ReadFrom(io.LimitReader(zeros{}, 100<<10))
			if m.Stats().MemoryInUse > 256<<10 {
				log.Fatal("over budget")
			}
			jobs <- b
		}
		close(jobs)
		wg.Wait()
		close(sizes)
	}()
	var total int64
	for n := range sizes {
		total += n
	}
	fmt.Println("processed bytes:", total)
	fmt.Println("buffers left:", m.Stats().Buffers)
	// Output:
	// processed bytes: 1024000
	// buffers left: 0
}

// zeros is an endless reader of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// ExampleBuffer_NewReader serves one buffer to several readers at once,
// each from an offset of its own, as a cache serves one blob to many
// downloads; the buffer's own offset does not move.
func ExampleBuffer_NewReader() {
	m, err := spool.NewManager(spool.Options{MemoryBudget: 1 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	b, err := m.NewBuffer()
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	b.WriteString("one blob, many readers")

	var wg sync.WaitGroup
	out := make([]string, 3)
	for i := range out {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var sb strings.Builder
			if _, err := b.NewReader().WriteTo(&sb); err != nil {
				log.Fatal(err)
			}
			out[i] = sb.String()
		}()
	}
	wg.Wait()
	fmt.Println(strings.Join(out, " | "))
	// Output:
	// one blob, many readers | one blob, many readers | one blob, many readers
}

// ExampleBuffer_NewSectionReader answers a range request: the Reader
// reads only the section, and its WriteTo sends spilled bytes to a file
// or socket without copying them through user space.
func ExampleBuffer_NewSectionReader() {
	m, err := spool.NewManager(spool.Options{MemoryBudget: 1 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	b, err := m.NewBuffer()
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	b.WriteString("0123456789abcdefghij")
	if err := b.Rollover(); err != nil { // the section is read from disk
		log.Fatal(err)
	}

	r := b.NewSectionReader(10, 6) // bytes 10-15, as "Range: bytes=10-15"
	p, err := io.ReadAll(r)
	fmt.Printf("%q %v, section of %d bytes\n", p, err, r.Size())
	// Output:
	// "abcdef" <nil>, section of 6 bytes
}

// ExampleBuffer_File hands a buffer's bytes to a program that wants a file
// of its own, such as a subprocess reading its standard input (cmd.Stdin
// = f): File returns a read-only copy, with no name on disk, that the
// caller closes.
func ExampleBuffer_File() {
	m, err := spool.NewManager(spool.Options{MemoryBudget: 1 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	b, err := m.NewBuffer()
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	b.WriteString("an upload to scan")

	f, err := b.File()
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	b.WriteString(", written after File") // not in the snapshot
	// cmd := exec.Command("clamscan", "-"); cmd.Stdin = f; ...
	p, err := io.ReadAll(f)
	fmt.Printf("%q %v\n", p, err)
	// Output:
	// "an upload to scan" <nil>
}

// ExampleBuffer_ReadRune reads text rune by rune and puts back the rune
// that ended a token, as a hand-written scanner does.
func ExampleBuffer_ReadRune() {
	m, err := spool.NewManager(spool.Options{MemoryBudget: 1 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	b, err := m.NewBuffer()
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	b.WriteString("größe=42€")
	b.Seek(0, io.SeekStart)

	var key []rune
	for {
		r, _, err := b.ReadRune()
		if err != nil {
			log.Fatal(err)
		}
		if r == '=' {
			b.UnreadRune() // leave the '=' for the next step
			break
		}
		key = append(key, r)
	}
	rest, _ := io.ReadAll(b)
	fmt.Printf("key %q, rest %q\n", string(key), rest)
	// Output:
	// key "größe", rest "=42€"
}

// newExampleBuffer returns a Manager and a Buffer holding s, rewound.
func newExampleBuffer(s string) (*spool.Manager, *spool.Buffer) {
	m, err := spool.NewManager(spool.Options{MemoryBudget: 1 << 20})
	if err != nil {
		log.Fatal(err)
	}
	b, err := m.NewBuffer()
	if err != nil {
		log.Fatal(err)
	}
	if _, err := b.WriteString(s); err != nil {
		log.Fatal(err)
	}
	if _, err := b.Seek(0, io.SeekStart); err != nil {
		log.Fatal(err)
	}
	return m, b
}

// ExampleBuffer_UnreadRune peeks at the next rune: read it, then put it
// back. A second UnreadRune in a row is an error, as for bytes.Buffer.
func ExampleBuffer_UnreadRune() {
	m, b := newExampleBuffer("€100")
	defer m.Close()

	r, size, _ := b.ReadRune()
	fmt.Printf("peeked %q (%d bytes)\n", r, size)
	fmt.Println(b.UnreadRune())
	fmt.Println(errors.Is(b.UnreadRune(), spool.ErrUnread))
	rest, _ := io.ReadAll(b)
	fmt.Printf("%q\n", rest)
	// Output:
	// peeked '€' (3 bytes)
	// <nil>
	// true
	// "€100"
}

// ExampleBuffer_UnreadByte lets a bufio-style tokenizer put back the byte
// that ended a number.
func ExampleBuffer_UnreadByte() {
	m, b := newExampleBuffer("42,7")
	defer m.Close()

	var digits []byte
	for {
		c, err := b.ReadByte()
		if err != nil {
			break
		}
		if c < '0' || c > '9' {
			b.UnreadByte() // the separator is the next token's
			break
		}
		digits = append(digits, c)
	}
	rest, _ := io.ReadAll(b)
	fmt.Printf("number %s, then %q\n", digits, rest)
	// Output:
	// number 42, then ",7"
}

// ExampleBuffer_Closed checks a Buffer that may have been closed
// elsewhere, by its owner or by the Manager's Close.
func ExampleBuffer_Closed() {
	m, b := newExampleBuffer("data")
	fmt.Println(b.Closed())
	m.Close() // closes every buffer
	fmt.Println(b.Closed())
	_, err := b.Write([]byte("more"))
	fmt.Println(errors.Is(err, spool.ErrClosed))
	// Output:
	// false
	// true
	// true
}

// ExampleReader_Seek reads a section from an offset of the Reader's own:
// the Buffer's offset does not move.
func ExampleReader_Seek() {
	m, b := newExampleBuffer("header:payload:trailer")
	defer m.Close()

	r := b.NewSectionReader(7, 7) // "payload"
	r.Seek(-4, io.SeekEnd)
	p, _ := io.ReadAll(r)
	pos, _ := b.Seek(0, io.SeekCurrent)
	fmt.Printf("%q, buffer offset %d\n", p, pos)
	// Output:
	// "load", buffer offset 0
}

// ExampleReader_ReadAt reads at offsets of the section, as an
// io.ReaderAt: here a fixed-size record in the middle of a buffer.
func ExampleReader_ReadAt() {
	m, b := newExampleBuffer("AAAABBBBCCCC")
	defer m.Close()

	records := b.NewSectionReader(4, 8) // records B and C
	p := make([]byte, 4)
	n, err := records.ReadAt(p, 4)
	fmt.Printf("%q %d %v\n", p[:n], n, err)
	n, err = records.ReadAt(p, 6) // runs past the section
	fmt.Printf("%q %d %v\n", p[:n], n, err)
	// Output:
	// "CCCC" 4 <nil>
	// "CC" 2 EOF
}

// ExampleReader_WriteTo copies a section out; to an *os.File or a
// *net.TCPConn, spilled blocks go without copies through user space.
func ExampleReader_WriteTo() {
	m, b := newExampleBuffer("skip this|send this")
	defer m.Close()

	var out strings.Builder
	n, err := b.NewSectionReader(10, 9).WriteTo(&out)
	fmt.Println(n, err, out.String())
	// Output:
	// 9 <nil> send this
}

// ExampleManager_SetMemoryBudget resizes the budget at run time, as a
// server does when its container is resized: shrinking moves buffers'
// chunks to disk until the memory in use fits, then returns.
func ExampleManager_SetMemoryBudget() {
	m, err := spool.NewManager(spool.Options{MemoryBudget: 4 << 20, ChunkSize: 64 << 10})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	b, err := m.NewBuffer()
	if err != nil {
		log.Fatal(err)
	}
	b.Write(make([]byte, 3<<20)) // 3 MiB, in memory

	if err := m.SetMemoryBudget(1 << 20); err != nil { // down to 1 MiB
		log.Fatal(err)
	}
	st := m.Stats()
	fmt.Println("budget:", st.MemoryBudget, "in use within it:", st.MemoryInUse <= st.MemoryBudget, "on disk:", b.OnDisk())

	if err := m.SetMemoryBudget(8 << 20); err != nil { // and up to 8 MiB
		log.Fatal(err)
	}
	c, _ := m.NewBuffer()
	c.Write(make([]byte, 6<<20))
	fmt.Println("budget:", m.Stats().MemoryBudget, "new buffer on disk:", c.OnDisk())
	// Output:
	// budget: 1048576 in use within it: true on disk: true
	// budget: 8388608 new buffer on disk: false
}

// ExampleManager_NewBufferContext makes an upload wait for disk budget
// held by another, instead of failing with ErrDiskBudget, until that one
// is closed; the wait ends with the request's context at the latest.
func ExampleManager_NewBufferContext() {
	m, err := spool.NewManager(spool.Options{MemoryBudget: 64 << 10, ChunkSize: 16 << 10, DiskBudget: 128 << 10})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	earlier, _ := m.NewBuffer()
	earlier.Write(make([]byte, 128<<10))
	earlier.Rollover() // the whole disk budget

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	upload, err := m.NewBufferContext(ctx)
	if err != nil {
		log.Fatal(err)
	}
	upload.Rollover() // on disk: every write needs disk budget
	done := make(chan error)
	go func() {
		_, err := upload.Write(make([]byte, 96<<10))
		done <- err
	}()
	for m.Stats().DiskWaiters == 0 {
		time.Sleep(time.Millisecond) // until the upload waits
	}
	fmt.Println("waiting:", m.Stats().DiskWaiters)
	earlier.Close() // its space goes to the waiting upload
	fmt.Println("upload:", <-done, upload.Size())
	// Output:
	// waiting: 1
	// upload: <nil> 98304
}

// ExampleBuffer_ReserveDisk admits an upload of known length: it waits
// for all of its disk room before it writes a byte, so the writes never
// wait, and it is never refused part way to end a deadlock with other
// uploads that wait for disk.
func ExampleBuffer_ReserveDisk() {
	m, err := spool.NewManager(spool.Options{MemoryBudget: 64 << 10, ChunkSize: 16 << 10, DiskBudget: 256 << 10})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	handle := func(ctx context.Context, body io.Reader, contentLength int64) error {
		buf, err := m.NewBufferContext(ctx)
		if err != nil {
			return err
		}
		defer buf.Close()
		if err := buf.ReserveDisk(contentLength); err != nil {
			return err // 507 Insufficient Storage, or the client went away
		}
		if _, err := io.Copy(buf, body); err != nil {
			return err
		}
		// The reservation, spent by the spill and counted as in use: 100 KiB
		// rounded up to 16 KiB blocks, one block more, two 4 KiB granules.
		fmt.Println("stored", buf.Size(), "bytes; disk in use while stored:", m.Stats().DiskInUse)
		return nil
	}
	ctx := context.Background()
	if err := handle(ctx, bytes.NewReader(make([]byte, 100<<10)), 100<<10); err != nil {
		log.Fatal(err)
	}
	err = handle(ctx, bytes.NewReader(make([]byte, 1<<20)), 1<<20)
	fmt.Println("too large:", errors.Is(err, spool.ErrDiskBudget))
	fmt.Println("disk in use after:", m.Stats().DiskInUse)
	// Output:
	// stored 102400 bytes; disk in use while stored: 139264
	// too large: true
	// disk in use after: 0
}

// ExampleManager_SetDiskBudget raises the disk budget at run time: a
// write refused at the old budget fits the new one.
func ExampleManager_SetDiskBudget() {
	m, err := spool.NewManager(spool.Options{MemoryBudget: 64 << 10, ChunkSize: 16 << 10, DiskBudget: 64 << 10})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	b, _ := m.NewBuffer()
	b.Rollover()
	_, err = b.Write(make([]byte, 96<<10))
	fmt.Println(errors.Is(err, spool.ErrDiskBudget), b.Size())

	if err := m.SetDiskBudget(1 << 20); err != nil {
		log.Fatal(err)
	}
	_, err = b.Write(make([]byte, 32<<10))
	fmt.Println(err, b.Size(), m.Stats().DiskBudget)
	// Output:
	// true 65536
	// <nil> 98304 1048576
}
