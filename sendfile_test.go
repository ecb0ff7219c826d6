package spool_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/spoolkit/spool"
)

// TestWriteToConnZeroCopy: WriteTo of a spilled buffer to a TCP connection
// takes the kernel's zero-copy path (Stats.ZeroCopyBytes) and the bytes
// arrive intact, from the current offset; a buffer in memory is copied.
func TestWriteToConnZeroCopy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, spill := range []bool{true, false} {
		m, err := spool.NewManager(spool.Options{MemoryBudget: 64 << 20, TempDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := m.NewBuffer()
		data := randBytes(77, 3<<20+12345)
		b.Write(data)
		if spill {
			if err := b.Rollover(); err != nil {
				t.Fatal(err)
			}
		}
		b.Seek(1000, io.SeekStart)
		got := make(chan []byte)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				got <- nil
				return
			}
			defer c.Close()
			p, _ := io.ReadAll(c)
			got <- p
		}()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		n, err := b.WriteTo(c)
		c.Close()
		recv := <-got
		if err != nil || n != int64(len(data)-1000) || !bytes.Equal(recv, data[1000:]) {
			t.Fatalf("spill=%v: WriteTo = %d, %v; received %d bytes, intact %v", spill, n, err, len(recv), bytes.Equal(recv, data[1000:]))
		}
		if pos, _ := b.Seek(0, io.SeekCurrent); pos != int64(len(data)) {
			t.Errorf("offset after WriteTo = %d", pos)
		}
		st := m.Stats()
		zc := st.ZeroCopyBytes
		if st.ReadBytes != n {
			t.Errorf("spill=%v: ReadBytes = %d after a WriteTo of %d", spill, st.ReadBytes, n)
		}
		if spill && zc != int64(len(data)-1000) {
			t.Errorf("ZeroCopyBytes = %d, want %d", zc, len(data)-1000)
		}
		if !spill && zc != 0 {
			t.Errorf("in memory: ZeroCopyBytes = %d", zc)
		}
		m.Close()
	}
}

// TestWriteToZeroCopyCorrupt: a corrupt block stops the zero-copy path
// before it is sent, and WriteTo returns ErrCorrupt having written only the
// verified blocks before it.
func TestWriteToZeroCopyCorrupt(t *testing.T) {
	data := randBytes(78, 3*blk)
	_, b := spilled(t, false, data)
	flip(t, spool.RawSpillFile(b), blk+10, 1)
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b.Seek(0, io.SeekStart)
	n, err := b.WriteTo(f)
	if !errors.Is(err, spool.ErrCorrupt) || n != blk {
		t.Fatalf("WriteTo with a corrupt second block = %d, %v; want %d, ErrCorrupt", n, err, blk)
	}
	got, _ := os.ReadFile(f.Name())
	if !bytes.Equal(got, data[:blk]) {
		t.Errorf("file holds %d bytes, not the first block", len(got))
	}
}

// TestWriteToStalledPeer: the kernel's send of a spilled block runs with
// no lock held, so a peer that stops reading holds up neither Close nor
// the buffer's other operations; closing the peer then ends the WriteTo.
func TestWriteToStalledPeer(t *testing.T) {
	data := randBytes(79, 1<<20)
	m, b := spilled(t, false, data)
	pr, pw, err := os.Pipe() // holds 64 KiB: the second block stalls
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Close()
	b.Seek(0, io.SeekStart)
	wrote := make(chan error, 1)
	go func() {
		_, err := b.WriteTo(pw)
		wrote <- err
	}()
	waitFor(t, "a first block sent", runtime.Gosched, func() bool { return m.Stats().ZeroCopyBytes > 0 })
	ops := make(chan error, 1)
	go func() {
		if _, err := b.WriteAt([]byte("x"), 0); err != nil {
			ops <- err
			return
		}
		ops <- b.Close()
	}()
	select {
	case err := <-ops:
		if err != nil {
			t.Errorf("WriteAt or Close during a stalled WriteTo: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("WriteAt and Close wait for a WriteTo whose peer does not read")
	}
	pr.Close() // the stalled send fails with EPIPE
	if err := <-wrote; err == nil {
		t.Error("WriteTo to a closed pipe returned no error")
	}
}

// TestWriteToStalledPeerNoOtherBytes: while a zero-copy send to a peer
// that stopped reading is stalled, the buffer is rewritten and closed and
// other buffers spill into the freed space: the peer gets only the first
// buffer's bytes, never another's, though the kernel may still hold the
// pages it was sending from (the extents it read are not reused before
// their frames are punched out).
func TestWriteToStalledPeerNoOtherBytes(t *testing.T) {
	m, err := spool.NewManager(spool.Options{ChunkSize: blk, MemoryBudget: 64 << 10, MaxSpillFiles: 1, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	data := bytes.Repeat([]byte("mine "), (1<<20)/5)
	b := spillInto(t, m, data)
	pr, pw, err := os.Pipe() // holds 64 KiB: the send stalls
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	b.Seek(0, io.SeekStart)
	wrote := make(chan error, 1)
	go func() {
		_, err := b.WriteTo(pw)
		pw.Close()
		wrote <- err
	}()
	waitFor(t, "a first block sent", runtime.Gosched, func() bool { return m.Stats().ZeroCopyBytes > 0 })
	if _, err := b.WriteAt(bytes.Repeat([]byte("x"), 8<<10), 0); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	var others []*spool.Buffer
	for i := range 8 {
		others = append(others, spillInto(t, m, bytes.Repeat([]byte("THEIRS"), 40000+i)))
	}
	got, _ := io.ReadAll(pr)
	<-wrote
	if bytes.Contains(got, []byte("THEIRS")) {
		t.Fatalf("the peer got another buffer's bytes (%d bytes read)", len(got))
	}
	if i := bytes.IndexFunc(got, func(r rune) bool { return !strings.ContainsRune("mine x", r) }); i >= 0 {
		t.Fatalf("the peer got a byte %q that was never the buffer's, at %d", got[i], i)
	}
	t.Logf("the peer got %d bytes", len(got))
	for _, o := range others {
		o.Close()
	}
}

// TestWriteToTCPNoOtherBytes: a spilled block sent zero-copy over TCP to
// a peer that has not read it yet may still be the kernel's pages of the
// spill file (sendfile hands the socket page references; over loopback
// they sit in the peer's receive queue). The block's buffer is closed and
// another buffer spills into the same frame: the peer must read the first
// buffer's bytes, not the second's, which a reuse of the sent extent would
// have written into those very pages.
func TestWriteToTCPNoOtherBytes(t *testing.T) {
	m, err := spool.NewManager(spool.Options{ChunkSize: blk, MemoryBudget: 64 << 10, MaxSpillFiles: 1, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	keeper := spillInto(t, m, bytes.Repeat([]byte("k"), 1000)) // keeps the frame in use
	b := spillInto(t, m, bytes.Repeat([]byte("m"), 1000))      // the next slot of that frame
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	peer := <-accepted
	if peer == nil {
		t.Fatal("accept failed")
	}
	defer peer.Close()
	b.Seek(0, io.SeekStart)
	if n, err := b.WriteTo(conn); n != 1000 || err != nil {
		t.Fatalf("WriteTo = %d, %v", n, err)
	}
	if m.Stats().ZeroCopyBytes != 1000 {
		t.Skipf("the block was not sent zero-copy (ZeroCopyBytes %d)", m.Stats().ZeroCopyBytes)
	}
	mtMust(t, "Close", b.Close())
	other := spillInto(t, m, bytes.Repeat([]byte("T"), 1000))
	conn.Close()
	got, err := io.ReadAll(peer)
	if err != nil {
		t.Fatal(err)
	}
	if want := bytes.Repeat([]byte("m"), 1000); !bytes.Equal(got, want) {
		t.Errorf("the peer read %q..., want the sent buffer's bytes", got[:min(len(got), 20)])
	}
	keeper.Close()
	other.Close()
}
