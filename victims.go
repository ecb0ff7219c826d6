package spool

// The victim search: which buffers a write short of memory rolls over.
//
// makeRoom (manager.go) asks for victims a batch at a time. One call of
// victims scans the buffers that hold memory (Manager.holding, kept by
// store.addMem) once under Manager.mu and keeps, in a fixed array (the
// Manager's batch), the victimBatch eligible buffers the policy would roll over
// first (policy.go's before), skipping those that come no later than the
// last buffer of the previous batch. A search thus costs one pass over
// the buffers in memory per batch and allocates nothing in steady state,
// however many buffers there are: a snapshot of every buffer per
// memory-short write was, at 10,000 buffers, megabytes of garbage and of
// pooled slices, all of it RAM outside the budget.
//
// The numbers are read without the buffers' locks, so they may be stale by
// the time a victim is locked, and may change between two batches; they
// only order the attempts. Each batch starts strictly after the previous
// one in the policy's order, but a buffer touched meanwhile can move past
// the cursor and be offered again, so makeRoom bounds a search by the
// number of buffers that were eligible when it began, and by
// maxFailedRollovers failed rollovers.

// victimBatch is the number of candidates in one batch of the victim
// search. A write short of memory usually needs one victim; more cover
// buffers that are busy (TryLock fails: at most one per goroutine holding
// a buffer's lock) or that a Close emptied meanwhile. 64 candidates take
// 3.5 KiB, an array of the Manager (Manager.batch).
const victimBatch = 64

// candidate is a snapshot of one buffer taken for a spill decision.
type candidate struct {
	b       *store
	id      uint64  // b.id, kept for the order once b is dropped
	mem     int64   // chunk bytes the buffer held
	lastUse uint64  // Manager clock at its last access
	density float64 // LeastFrequentlyUsed: accesses per byte held
}

// victimQuery says which buffers a victim search may return.
type victimQuery struct {
	self      *store     // never returned: its lock is the caller's
	limit     float64    // LeastFrequentlyUsed: density below this,
	inclusive bool       // or at most this if inclusive
	after     *candidate // if not nil, only buffers the policy puts after it
}

// victims fills batch with the live buffers that hold memory and that q
// allows, at most victimBatch of them, those the policy would roll over
// first, in that order; it returns them, and the number of buffers and
// memory held by every buffer q allows but for its cursor (not only those
// in the batch). m.mu is held.
func (m *Manager) victims(batch *[victimBatch]candidate, q victimQuery) (cs []candidate, total int64, eligible int) {
	p := m.opts.Policy
	// h is a max-heap by the policy's order: h[0] is the candidate that
	// would be rolled over last, the one a better candidate displaces.
	h := batch[:0]
	for _, b := range m.holding {
		if b == q.self {
			continue
		}
		mem := b.mem.Load()
		if mem <= 0 {
			continue
		}
		c := candidate{b: b, id: b.id, mem: mem, lastUse: b.lastUse.Load()}
		if m.freq != nil {
			c.density = density(m.freq.count(&b.freq), mem)
			if !(c.density < q.limit || (q.inclusive && c.density == q.limit)) {
				continue
			}
		}
		total += mem
		eligible++
		if b.making.Load() {
			// Its writer holds its lock while it waits for room: an
			// eviction would find it busy. Left in the batch, such
			// buffers used up the queue for nothing while thousands of
			// writers were short of memory, each refill searching again
			// under Manager.mu.
			continue
		}
		if q.after != nil && !p.before(q.after, &c) {
			continue // tried in an earlier batch
		}
		switch {
		case len(h) < victimBatch:
			h = append(h, c)
			siftUp(h, len(h)-1, p)
		case p.before(&c, &h[0]):
			h[0] = c
			siftDown(h, 0, p)
		}
	}
	// Sort in place: repeatedly move the last of the heap to its end.
	for n := len(h) - 1; n > 0; n-- {
		h[0], h[n] = h[n], h[0]
		siftDown(h[:n], 0, p)
	}
	return h, total, eligible
}

// siftUp and siftDown keep h a max-heap by p's order (the root is the
// candidate p would roll over last).
func siftUp(h []candidate, i int, p Policy) {
	for i > 0 {
		parent := (i - 1) / 2
		if !p.before(&h[parent], &h[i]) {
			return
		}
		h[parent], h[i] = h[i], h[parent]
		i = parent
	}
}

func siftDown(h []candidate, i int, p Policy) {
	for {
		last := i
		if l := 2*i + 1; l < len(h) && p.before(&h[last], &h[l]) {
			last = l
		}
		if r := 2*i + 2; r < len(h) && p.before(&h[last], &h[r]) {
			last = r
		}
		if last == i {
			return
		}
		h[i], h[last] = h[last], h[i]
		i = last
	}
}
