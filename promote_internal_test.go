package spool

import "testing"

// TestPromoterStopsServing: once stop has closed done, the promoter
// goroutine takes nothing more from its queue, even though a select picks
// at random among the cases that are ready (stop may return without
// waiting for it, while it runs user code, so Manager.Close counts on
// this).
func TestPromoterStopsServing(t *testing.T) {
	m, err := NewManager(Options{TempDir: t.TempDir(), Policy: LeastFrequentlyUsed})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	b, err := m.NewBuffer()
	if err != nil {
		t.Fatal(err)
	}
	s := b.s
	p := &promoter{m: m, ch: make(chan *store, 1), done: make(chan struct{})}
	close(p.done)
	for i := range 100 {
		s.offered.Store(true)
		p.ch <- s
		p.run() // returns at once: done is closed
		if !s.offered.Load() {
			t.Fatalf("round %d: the promoter served its queue after stop", i)
		}
		select { // empty the queue, if run took s without serving it
		case <-p.ch:
		default:
		}
	}
}
