package spool

import (
	"sync"
	"time"

	"github.com/dgraph-io/ristretto/v2"
)

// admission decides whether a spilled buffer is worth bringing back into
// memory, with ristretto's TinyLFU: a buffer is admitted if ristretto,
// which has seen every read (Get) of every buffer, would keep it in a
// cache of the budget's size against the buffers it already holds. It
// keeps one-hit wonders (a scan, an upload read back once) out of memory.
//
// ristretto is a hint, never a source of truth: the budget is enforced by
// the semaphore alone, and a lost or dropped ristretto record only makes a
// promotion happen later or not at all. As measured with ristretto v2.4.2,
// so designed around:
//   - Set is asynchronous and may be dropped; Get records are lossy. Only
//     the promoter goroutine, which holds no lock, calls Set and Wait. Get
//     and Del are called with no spool lock held or are non-blocking.
//   - Keys are buffer IDs (never pointers), hashed with a mixing function:
//     ristretto's default hash of an integer key is the key itself, which
//     makes the count-min sketch rows collide (ristretto issue #108).
//   - Get, Set, Del and Wait racing Close panic (a send on the channel
//     Close closes, between that close and the flag that would have made
//     them return). A spill event can be delivered, and its Del made, on
//     any goroutine after Manager.Close has closed every buffer (an OnSpill
//     running as Close proceeds), so every call into the cache holds mu for
//     reading and checks closed, and close takes mu for writing: it waits
//     for the calls in progress, and the calls after it do nothing. No
//     call holds mu while running user code.
//   - Close calls OnEvict for every item: no OnEvict callback is installed.
//
// The zero *admission (nil) admits nothing and records nothing.
type admission struct {
	c admissionCache

	// mu is held for reading by every call into c, and for writing by
	// close; it guards closed.
	mu     sync.RWMutex
	closed bool
}

// admissionCache is what admission uses of a *ristretto.Cache; tests
// substitute a cache that records the calls made after Close.
type admissionCache interface {
	Get(key uint64) (struct{}, bool)
	Set(key uint64, value struct{}, cost int64) bool
	Wait()
	GetTTL(key uint64) (time.Duration, bool)
	Del(key uint64)
	Close()
}

func newAdmission(budget int64) (*admission, error) {
	c, err := ristretto.NewCache(&ristretto.Config[uint64, struct{}]{
		NumCounters:        1 << 20, // ~10× the buffers it can track well
		MaxCost:            budget,
		BufferItems:        64,
		IgnoreInternalCost: true,
		KeyToHash:          mixKey,
	})
	if err != nil {
		return nil, err
	}
	return &admission{c: c}, nil
}

// mixKey hashes a buffer ID with splitmix64's finalizer, and a second,
// differently mixed hash for ristretto's conflict check.
func mixKey(id uint64) (uint64, uint64) {
	return splitmix(id), splitmix(id ^ 0x9e3779b97f4a7c15)
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// record counts an access to buffer id in ristretto's frequency sketch.
// It does not block.
func (a *admission) record(id uint64) {
	if a == nil {
		return
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	if !a.closed {
		a.c.Get(id)
	}
}

// admit proposes buffer id at cost bytes and reports whether ristretto
// admitted it. It waits for ristretto's buffers to drain: call it only
// holding no lock.
func (a *admission) admit(id uint64, cost int64) bool {
	if a == nil {
		return false
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.closed || !a.c.Set(id, struct{}{}, cost) {
		return false
	}
	a.c.Wait()
	_, ok := a.c.GetTTL(id) // a look-up that records no access
	return ok
}

// forget removes buffer id, which left memory. It does not block long;
// call it holding no spool lock.
func (a *admission) forget(id uint64) {
	if a == nil {
		return
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	if !a.closed {
		a.c.Del(id)
	}
}

// close closes the cache once the calls in progress have returned; later
// calls do nothing.
func (a *admission) close() {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.closed {
		a.closed = true
		a.c.Close()
	}
}
