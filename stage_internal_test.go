package spool

import "testing"

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
