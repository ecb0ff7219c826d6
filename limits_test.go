package spool_test

import (
	"errors"
	"testing"

	"github.com/spoolkit/spool"
)

// TestDiskBudget: writes that would take the spill files past DiskBudget
// fail with ErrDiskBudget, having written the whole chunks that fit (their
// count says so); everything acknowledged reads back; DiskInUse never
// passes the limit; closing a buffer makes room.
func TestDiskBudget(t *testing.T) {
	const limit = 100 << 10
	m, err := spool.NewManager(spool.Options{MemoryBudget: 4 * 4096, ChunkSize: 4096, DiskBudget: limit, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var bufs []*spool.Buffer
	var datas [][]byte
	var full error
	for i := 0; full == nil && i < 10; i++ {
		b, _ := m.NewBuffer()
		data := randBytes(uint64(i), 30<<10)
		n, err := b.Write(data)
		if err != nil {
			full = err
			if n != 0 && n != 4096*(n/4096) {
				t.Errorf("partial write of %d bytes", n)
			}
			data = data[:n]
		}
		bufs, datas = append(bufs, b), append(datas, data)
		if st := m.Stats(); st.DiskInUse > limit {
			t.Fatalf("DiskInUse %d > DiskBudget %d", st.DiskInUse, limit)
		}
	}
	if !errors.Is(full, spool.ErrDiskBudget) {
		t.Fatalf("writing 300 KiB under a 100 KiB disk budget: err = %v, want ErrDiskBudget", full)
	}
	for i, b := range bufs {
		wantContent(t, b, datas[i])
	}
	// A rollover past the limit fails too, and leaves the buffer intact.
	last := bufs[len(bufs)-1]
	if err := last.Rollover(); len(datas[len(datas)-1]) > 0 && !errors.Is(err, spool.ErrDiskBudget) {
		t.Errorf("Rollover past the disk budget = %v", err)
	}
	wantContent(t, last, datas[len(datas)-1])
	// Closing the first buffers gives their disk back.
	bufs[0].Close()
	bufs[1].Close()
	b, _ := m.NewBuffer()
	data := randBytes(99, 30<<10)
	if _, err := b.Write(data); err != nil {
		t.Fatalf("Write after freeing disk = %v", err)
	}
	wantContent(t, b, data)
}

// TestMaxSpillFiles: past MaxSpillFiles open spill files, a rollover fails
// with ErrSpillFiles and the buffer stays in memory with its data; a write
// that needs a file then fails with the same error and writes nothing.
func TestMaxSpillFiles(t *testing.T) {
	m, err := spool.NewManager(spool.Options{MemoryBudget: 8 * 4096, ChunkSize: 4096, MaxSpillFiles: 2, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var bufs []*spool.Buffer
	for i := range 3 {
		b, _ := m.NewBuffer()
		b.Write(randBytes(uint64(i), 5000))
		bufs = append(bufs, b)
	}
	for _, b := range bufs[:2] {
		if err := b.Rollover(); err != nil {
			t.Fatal(err)
		}
	}
	if err := bufs[2].Rollover(); !errors.Is(err, spool.ErrSpillFiles) {
		t.Fatalf("third Rollover = %v, want ErrSpillFiles", err)
	}
	if bufs[2].OnDisk() {
		t.Error("buffer on disk after a refused rollover")
	}
	wantContent(t, bufs[2], randBytes(2, 5000))
	if n, err := bufs[2].WriteAt([]byte("x"), 1<<20); n != 0 || !errors.Is(err, spool.ErrSpillFiles) {
		t.Errorf("WriteAt past the memory budget = %d, %v; want 0, ErrSpillFiles", n, err)
	}
	if st := m.Stats(); st.BuffersOnDisk != 2 {
		t.Errorf("BuffersOnDisk = %d, want 2", st.BuffersOnDisk)
	}
	bufs[0].Close()
	if err := bufs[2].Rollover(); err != nil {
		t.Errorf("Rollover after a spill file was closed = %v", err)
	}
}
