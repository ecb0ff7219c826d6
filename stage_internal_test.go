package spool

import (
	"bytes"
	"testing"
)

// TestRenewAfterAdoptAndClose: a ReadFrom stage adopted by its buffer
// belongs to the buffer, header and all; if the Manager closes before the
// stage is renewed, the buffer gives the slice back and memory reuses its
// header. renew must not read the stage's size from that header: it gets
// a stage of the adopted size (or a spare), never an empty one, which a
// Read returning 0, nil would spin on.
func TestRenewAfterAdoptAndClose(t *testing.T) {
	m, b := managerAndBuffer(t, t.TempDir())
	cs := int(m.cs)
	st, ok := b.s.takeStage(cs)
	if !ok || !st.charged {
		t.Fatal("no chunk-sized stage from a free budget")
	}
	if !b.s.adopt(st.buf) {
		t.Fatal("an empty buffer in memory did not adopt a whole chunk")
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	st.renew(cs)
	switch n := len(*st.buf); {
	case st.charged && n != cs:
		t.Errorf("renewed stage: %d bytes of budget, want %d", n, cs)
	case !st.charged && n != minStage:
		t.Errorf("renewed spare: %d bytes, want %d", n, minStage)
	}
	st.release()
	if got := m.Stats().MemoryInUse; got != 0 {
		t.Errorf("MemoryInUse %d after Close and the stage's release", got)
	}
}

// managerAndBuffer returns a Manager with a 1 MiB budget spilling into
// dir, and an empty Buffer of it.
func managerAndBuffer(t *testing.T, dir string) (*Manager, *Buffer) {
	t.Helper()
	return managerWith(t, Options{MemoryBudget: 1 << 20, TempDir: dir})
}

// managerWith returns a Manager of opts, and a Buffer of it.
func managerWith(t *testing.T, opts Options) (*Manager, *Buffer) {
	t.Helper()
	m, err := NewManager(opts)
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.NewBuffer()
	if err != nil {
		t.Fatal(err)
	}
	return m, b
}

// TestWriteToLendsChunk: a WriteTo of a spilled buffer that can have no
// chunk of budget (the budget is full of a buffer that cannot be rolled
// over) borrows one of the Manager's lent chunks, and so reads each block
// from the spill file once, not once per piece of a smaller stage; with
// every lent chunk taken, it still copies everything, through a spare. A
// lent chunk goes back when the call ends.
func TestWriteToLendsChunk(t *testing.T) {
	const cs = 64 << 10
	f := &Faults{FailAt: -1}
	m, err := NewManagerWithFaults(Options{MemoryBudget: 4 * cs, TempDir: t.TempDir()}, f)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	data := bytes.Repeat([]byte("0123456789abcdef"), 8*cs/16)
	spilled, _ := m.NewBuffer()
	defer spilled.Close()
	if _, err := spilled.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := spilled.Rollover(); err != nil {
		t.Fatal(err)
	}
	full, _ := m.NewBuffer()
	defer full.Close()
	if _, err := full.Write(data[:4*cs]); err != nil {
		t.Fatal(err)
	}
	if st := m.Stats(); st.MemoryInUse != st.MemoryBudget {
		t.Fatalf("MemoryInUse %d, want the whole budget %d", st.MemoryInUse, st.MemoryBudget)
	}
	// full's lock held: it cannot be rolled over to make room.
	full.s.mu.Lock()
	defer full.s.mu.Unlock()

	copyBack := func() {
		t.Helper()
		if _, err := spilled.Seek(0, 0); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if _, err := spilled.WriteTo(&out); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), data) {
			t.Fatal("WriteTo wrote other bytes than were written")
		}
	}
	before := f.ReadBytes()
	copyBack()
	if read := f.ReadBytes() - before; read != int64(len(data)) {
		t.Errorf("WriteTo read %d bytes of spill file for %d bytes: want each block read once", read, len(data))
	}
	if n := m.lent.Load(); n != 0 {
		t.Errorf("%d chunks still lent after WriteTo", n)
	}

	// Every lent chunk taken: a spare, and each block read per piece.
	var held []stage
	for {
		st, ok := m.lend()
		if !ok {
			break
		}
		held = append(held, st)
	}
	if len(held) != int(m.maxLent) || m.maxLent < 1 {
		t.Fatalf("lent %d chunks, want maxLent = %d", len(held), m.maxLent)
	}
	before = f.ReadBytes()
	copyBack()
	if read := f.ReadBytes() - before; read <= int64(len(data)) {
		t.Errorf("with no chunk to lend, WriteTo read %d bytes for %d: it should have read blocks again", read, len(data))
	}
	for i := range held {
		held[i].release()
	}
	if n := m.lent.Load(); n != 0 {
		t.Errorf("%d chunks lent after all were given back", n)
	}
}
