package spool

import (
	"sync"
	"testing"
	"time"
)

// lateCache is an admissionCache that counts the calls made once Close
// has begun: on a real ristretto cache, such a call can panic with a send
// on a closed channel.
type lateCache struct {
	mu     sync.Mutex
	closed bool
	late   []string
}

func (c *lateCache) call(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		c.late = append(c.late, name)
	}
}

func (c *lateCache) Get(uint64) (struct{}, bool)         { c.call("Get"); return struct{}{}, false }
func (c *lateCache) Set(uint64, struct{}, int64) bool    { c.call("Set"); return false }
func (c *lateCache) Wait()                               { c.call("Wait") }
func (c *lateCache) GetTTL(uint64) (time.Duration, bool) { c.call("GetTTL"); return 0, false }
func (c *lateCache) Del(uint64)                          { c.call("Del") }
func (c *lateCache) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
}

// TestCloseDuringSpillDelivery: a write that rolls two buffers over
// delivers two spill events after it has released every lock; the first
// OnSpill blocks while Manager.Close runs to the end. The second event's
// delivery must not call into the closed ristretto cache (issue 10, item
// 2: a Del racing ristretto's Close panicked with a send on a closed
// channel).
func TestCloseDuringSpillDelivery(t *testing.T) {
	inSpill, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	m, err := NewManager(Options{
		MemoryBudget: 4 * 4096, ChunkSize: 4096, Policy: LeastFrequentlyUsed, TempDir: t.TempDir(),
		OnSpill: func(e SpillEvent) {
			if e.Reason == SpillEvicted {
				once.Do(func() { close(inSpill); <-release })
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	m.adm.close() // the real cache; its goroutines stop
	fake := new(lateCache)
	m.adm = &admission{c: fake}

	a, _ := m.NewBuffer()
	c, _ := m.NewBuffer()
	w, _ := m.NewBuffer()
	for _, b := range []*Buffer{a, c} {
		if _, err := b.Write(make([]byte, 2*4096)); err != nil {
			t.Fatal(err)
		}
	}
	p := make([]byte, 1)
	for range 50 { // w is hot: its write may displace a and c
		w.ReadAt(p, 0)
	}
	wrote := make(chan error, 1)
	go func() {
		_, err := w.Write(make([]byte, 4*4096))
		wrote <- err
	}()
	<-inSpill
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	if st := m.Stats(); st.Evictions != 2 {
		t.Fatalf("Evictions = %d, want 2 (both a and c rolled over for w)", st.Evictions)
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if len(fake.late) > 0 {
		t.Errorf("calls into the cache after its Close: %v", fake.late)
	}
}
