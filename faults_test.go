package spool_test

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"syscall"
	"testing"

	"github.com/spoolkit/spool"
)

// faultManager returns a Manager with 4 KiB chunks and a budget of four,
// whose spill files fail as f says.
func faultManager(t *testing.T, f *spool.Faults) *spool.Manager {
	t.Helper()
	m, err := spool.NewManagerWithFaults(spool.Options{
		MemoryBudget: 4 * 4096,
		ChunkSize:    4096,
		TempDir:      t.TempDir(),
	}, f)
	if err != nil {
		t.Fatal(err)
	}
	spool.SetPoison(m, 0xEE)
	t.Cleanup(func() { m.Close() })
	return m
}

func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(r.Uint32()) | 1
	}
	return p
}

func wantContent(t *testing.T, b *spool.Buffer, want []byte) {
	t.Helper()
	got := make([]byte, len(want)+1)
	n, err := b.ReadAt(got, 0)
	if n != len(want) || err != io.EOF || !bytes.Equal(got[:n], want) {
		t.Fatalf("ReadAt(all) = %d, %v; want %d bytes, EOF (equal: %v)", n, err, len(want), bytes.Equal(got[:n], want))
	}
}

// TestRolloverCreateFails: a rollover that cannot create its file returns
// the error, wrapped, and leaves the buffer in memory, intact and usable.
func TestRolloverCreateFails(t *testing.T) {
	f := &spool.Faults{FailAt: 0, Err: syscall.ENOSPC}
	m := faultManager(t, f)
	b, _ := m.NewBuffer()
	data := randBytes(1, 10000)
	if _, err := b.Write(data); err != nil {
		t.Fatal(err)
	}
	before := m.Stats().MemoryInUse
	err := b.Rollover()
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Rollover = %v, want ENOSPC", err)
	}
	if b.OnDisk() {
		t.Error("OnDisk after failed rollover")
	}
	st := m.Stats()
	if st.MemoryInUse != before || st.SpillErrors != 1 || st.Spills != 0 {
		t.Errorf("after failed rollover: %+v, want MemoryInUse %d, 1 spill error, 0 spills", st, before)
	}
	wantContent(t, b, data)
	// The fault was transient: the next rollover works.
	if err := b.Rollover(); err != nil {
		t.Fatalf("second Rollover = %v", err)
	}
	if !b.OnDisk() || m.Stats().MemoryInUse != 0 {
		t.Errorf("after rollover: OnDisk %v, %+v", b.OnDisk(), m.Stats())
	}
	wantContent(t, b, data)
}

// TestRolloverFailsPartWay: a rollover stopped by a disk error after some
// chunks reached the file keeps every byte readable, has given back the
// memory of the chunks that moved, and can be finished later.
func TestRolloverFailsPartWay(t *testing.T) {
	for _, short := range []bool{false, true} {
		f := &spool.Faults{FailAt: 2, Err: syscall.EIO, Short: short} // 0 create, 1 chunk 0, 2 chunk 1
		m := faultManager(t, f)
		b, _ := m.NewBuffer()
		data := randBytes(2, 3*4096+100)
		if _, err := b.Write(data); err != nil {
			t.Fatal(err)
		}
		// Three full chunks, and the smallest class that holds the last
		// 100 bytes.
		if got := m.Stats().MemoryInUse; got != 3*4096+256 {
			t.Fatalf("MemoryInUse = %d, want %d", got, 3*4096+256)
		}
		if err := b.Rollover(); !errors.Is(err, syscall.EIO) {
			t.Fatalf("Rollover = %v, want EIO", err)
		}
		if got := m.Stats().MemoryInUse; got != 2*4096+256 {
			t.Errorf("after a rollover that moved one chunk: MemoryInUse = %d, want %d", got, 2*4096+256)
		}
		wantContent(t, b, data)
		// Writes still work, to memory and to the file.
		more := randBytes(3, 5000)
		if _, err := b.WriteAt(more, 4000); err != nil {
			t.Fatal(err)
		}
		want := append([]byte(nil), data...)
		copy(want[4000:], more)
		wantContent(t, b, want)
		if err := b.Rollover(); err != nil {
			t.Fatalf("second Rollover = %v", err)
		}
		if got := m.Stats().MemoryInUse; got != 0 {
			t.Errorf("after rollover: MemoryInUse = %d", got)
		}
		wantContent(t, b, want)
	}
}

// TestSpilledWriteFails: a write to a spilled buffer that fails part way
// reports how much it wrote, counting whole checksummed blocks; those bytes
// and everything before are intact, and the block whose write failed keeps
// its former content.
func TestSpilledWriteFails(t *testing.T) {
	// 0 create, 1 first write (to an extent with room for twice its
	// bytes), 2 the append that fills block 0, 3 block 1.
	f := &spool.Faults{FailAt: 3, Err: syscall.ENOSPC, Short: true}
	m := faultManager(t, f)
	b, _ := m.NewBuffer()
	if err := b.Rollover(); err != nil {
		t.Fatal(err)
	}
	first := randBytes(4, 3000)
	if _, err := b.Write(first); err != nil {
		t.Fatal(err)
	}
	second := randBytes(5, 200<<10)
	n, err := b.Write(second)
	if want := 4096 - 3000; !errors.Is(err, syscall.ENOSPC) || n != want {
		t.Fatalf("Write = %d, %v; want %d, ENOSPC", n, err, want)
	}
	want := append(first, second[:n]...)
	if b.Size() != int64(len(want)) {
		t.Errorf("Size = %d, want %d", b.Size(), len(want))
	}
	wantContent(t, b, want)
	// The fault was transient: writing the rest now works.
	if _, err := b.Write(second[n:]); err != nil {
		t.Fatal(err)
	}
	wantContent(t, b, append(first, second...))
}

// TestReadFails: a read error on a spilled buffer is returned wrapped,
// never as wrong data.
func TestReadFails(t *testing.T) {
	f := &spool.Faults{FailAt: 3, Err: syscall.EIO, Persistent: true} // 0 create, 1 write, 2 read, 3 read
	m := faultManager(t, f)
	b, _ := m.NewBuffer()
	data := randBytes(6, 3000)
	b.Write(data)
	if err := b.Rollover(); err != nil {
		t.Fatal(err)
	}
	wantContent(t, b, data)
	spool.DropWindow(b) // the next reads go to the file
	p := make([]byte, 100)
	if n, err := b.ReadAt(p, 0); !errors.Is(err, syscall.EIO) || n != 0 {
		t.Errorf("ReadAt = %d, %v; want 0, EIO", n, err)
	}
	b.Seek(0, io.SeekStart)
	if _, err := io.ReadAll(b); !errors.Is(err, syscall.EIO) {
		t.Errorf("ReadAll = %v, want EIO", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
	// Every operation fails from the read on, so the frame the buffer
	// freed could be neither cut off the file nor punched out: its granule
	// (4 KiB) stays charged, since the file still holds it.
	if st := m.Stats(); st.DiskInUse > 4096 || st.DiskLive != 0 || st.BuffersOnDisk != 0 {
		t.Errorf("after Close: %+v", st)
	}
	// The spill file is the arena's: Manager.Close closes it, returns its
	// error, and gives back what the disk budget counted for it.
	if err := m.Close(); !errors.Is(err, syscall.EIO) {
		t.Errorf("Manager.Close = %v, want the close error EIO", err)
	}
	if st := m.Stats(); st.DiskInUse != 0 {
		t.Errorf("after Manager.Close: DiskInUse %d", st.DiskInUse)
	}
}

// TestEvictionFails: when rolling other buffers over fails, the writer's
// own rollover is tried; when that fails too, the write returns the error
// and writes nothing. No data is lost anywhere, the budget is exact, and
// everything works again once the disk does.
func TestEvictionFails(t *testing.T) {
	f := &spool.Faults{FailAt: -1, Err: syscall.ENOSPC}
	m := faultManager(t, f)
	a, _ := m.NewBuffer()
	b, _ := m.NewBuffer()
	da := randBytes(7, 3*4096)
	if _, err := a.Write(da); err != nil {
		t.Fatal(err)
	}
	db := randBytes(8, 4096)
	if _, err := b.Write(db); err != nil {
		t.Fatal(err)
	}
	f.FailAt, f.Persistent = f.Ops(), true // the disk is full from now on
	n, err := b.Write(randBytes(9, 100))
	if n != 0 || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Write with a full disk = %d, %v; want 0, ENOSPC", n, err)
	}
	st := m.Stats()
	if st.MemoryInUse != 4*4096 || st.Spills != 0 || st.SpillErrors != 2 {
		t.Errorf("after failed eviction: %+v; want all 4 chunks in use, 0 spills, 2 spill errors", st)
	}
	wantContent(t, a, da)
	wantContent(t, b, db)

	f.FailAt = -1 // the disk has room again
	if _, err := b.Write(randBytes(9, 100)); err != nil {
		t.Fatalf("Write after the disk recovered = %v", err)
	}
	if !a.OnDisk() {
		t.Error("the largest buffer was not evicted")
	}
	wantContent(t, a, da)
	wantContent(t, b, append(db, randBytes(9, 100)...))
}

// TestFaultSweep runs one scripted workload (three buffers under a budget
// of four chunks: writes that force rollovers and evictions, a hole,
// truncates, rollovers, reads, Close) with the Nth spill-file operation
// (create, write, read, truncate, close) failing, for every N until the
// workload runs clean: with transient and with persistent faults, plain
// and encrypted, failing with ENOSPC, EIO, EACCES or another error, every
// other one after a short write. After each run: every call
// either succeeded or returned the injected error; every byte acknowledged
// as written read back identical or the read failed with the injected
// error; after Close nothing is left.
func TestFaultSweep(t *testing.T) {
	kinds := []error{syscall.ENOSPC, syscall.EIO, syscall.EACCES, errors.New("injected fault")}
	points := 0
	for _, mode := range []struct{ persistent, encrypt bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
		persistent := mode.persistent
		for n := 0; ; n++ {
			injected := kinds[n%len(kinds)]
			f := &spool.Faults{FailAt: n, Persistent: persistent, Short: n%2 == 1, Err: injected}
			faulted := sweepRun(t, f, injected, mode.encrypt)
			if t.Failed() {
				t.Fatalf("failed with fault at operation %d (persistent %v)", n, persistent)
			}
			if !faulted {
				break
			}
			points++
		}
	}
	t.Logf("fault points injected and survived: %d", points)
	if points < 20 {
		t.Errorf("only %d fault points: the workload does not reach the disk enough", points)
	}
}

// sweepRun runs the workload and reports whether the fault was reached.
func sweepRun(t *testing.T, f *spool.Faults, injected error, encrypt bool) bool {
	dir := t.TempDir()
	fds := openFDs(t)
	m, err := spool.NewManagerWithFaults(spool.Options{MemoryBudget: 4 * 4096, ChunkSize: 4096, TempDir: dir, EncryptSpill: encrypt}, f)
	if err != nil {
		t.Fatal(err)
	}
	spool.SetPoison(m, 0xEE)
	check := func(what string, err error) bool {
		t.Helper()
		if err != nil && !errors.Is(err, injected) {
			t.Errorf("%s: unexpected error %v", what, err)
		}
		return err == nil
	}
	bufs := make([]*spool.Buffer, 3)
	models := make([]model, 3)
	for i := range bufs {
		bufs[i], _ = m.NewBuffer()
	}
	verify := func(i int) {
		t.Helper()
		md := &models[i]
		got := make([]byte, len(md.data)+10)
		n, err := bufs[i].ReadAt(got, 0)
		if err != nil && err != io.EOF {
			check("ReadAt", err)
			return
		}
		if n != len(md.data) || !bytes.Equal(got[:n], md.data) {
			t.Errorf("buffer %d: read %d bytes, want %d; equal %v", i, n, len(md.data), bytes.Equal(got[:n], md.data))
		}
	}
	write := func(i int, p []byte, off int64) {
		n, err := bufs[i].WriteAt(p, off)
		check("WriteAt", err)
		models[i].writeAt(p[:n], off)
	}
	for round := range 3 {
		for i := range bufs {
			write(i, randBytes(uint64(10*round+i), 5000), int64(round*5000))
			verify(i)
		}
		write(0, randBytes(99, 100), 30000) // a hole
		if err := bufs[1].Truncate(int64(7000 * (round + 1))); check("Truncate", err) {
			models[1].truncate(int64(7000 * (round + 1)))
		}
		// Small appends: slots holding size classes grow, in memory or,
		// on a buffer with a file, into it when memory is short.
		for k := range 3 {
			write(1, randBytes(uint64(50+round*3+k), 700), int64(len(models[1].data)))
		}
		check("Rollover", bufs[2].Rollover())
		write(2, randBytes(uint64(60+round), 300), int64(len(models[2].data))+10)
		for i := range bufs {
			verify(i)
		}
	}
	for i := range bufs {
		check("Close", bufs[i].Close())
	}
	check("Manager.Close", m.Close())
	checkEmpty(t, m, dir, fds)
	return f.Ops() > f.FailAt
}
