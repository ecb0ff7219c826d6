package spool

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// A Manager hands out Buffers that share one memory budget. Each Buffer
// keeps its data in memory, in chunks taken from the budget, until it rolls
// over to a temporary file; together, the buffers of a Manager never hold
// more than Options.MemoryBudget bytes of chunk memory.
//
// When a write needs memory that the budget lacks, the Manager rolls other
// buffers over to disk, in the order of Options.Policy, skipping any buffer
// another goroutine is using at that moment; if that does not free enough,
// the writing buffer itself rolls over and the write goes to disk. No
// operation ever waits for memory.
//
// A Manager is safe for use by multiple goroutines at once. Create one
// with NewManager; the zero Manager is not usable. Close it to close every
// buffer it handed out and remove their spill files.
type Manager struct {
	opts     Options // validated, defaults filled in
	budget   *budget
	pool     *chunkPool
	fs       fileSystem
	seal     *sealer // encrypts spilled blocks; nil without EncryptSpill
	cs       int64   // chunk size
	memLimit int64   // largest size a buffer may have and stay in memory

	clock  atomic.Uint64 // logical time of buffer accesses, for LRU
	nextID atomic.Uint64

	diskInUse    atomic.Int64
	onDisk       atomic.Int64
	spills       atomic.Int64
	spilledBytes atomic.Int64
	diskWritten  atomic.Int64
	evictions    atomic.Int64
	spillErrors  atomic.Int64
	leaked       atomic.Int64

	// mu protects the following fields. See lock.go: it is a leaf lock.
	mu     sync.Mutex
	closed bool
	bufs   []*store // live buffers; bufs[s.idx] == s
}

// NewManager returns a Manager configured by opts, or an error wrapping
// ErrInvalidOptions that names the first invalid field.
func NewManager(opts Options) (*Manager, error) {
	return newManager(opts, osFS{})
}

func newManager(opts Options, fs fileSystem) (*Manager, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	cs := int64(o.ChunkSize)
	limit := o.MemoryBudget / cs * cs
	if o.BufferThreshold > 0 && o.BufferThreshold < limit {
		limit = o.BufferThreshold
	}
	var seal *sealer
	if o.EncryptSpill {
		if seal, err = newSealer(); err != nil {
			return nil, fmt.Errorf("spool: EncryptSpill: %w", err)
		}
	}
	return &Manager{
		seal:     seal,
		opts:     o,
		budget:   newBudget(o.MemoryBudget),
		pool:     newChunkPool(o.ChunkSize),
		fs:       fs,
		cs:       cs,
		memLimit: limit,
	}, nil
}

// NewBuffer returns a new, empty Buffer in memory. It takes no memory from
// the budget until data is written. It returns ErrClosed after Close.
func (m *Manager) NewBuffer() (*Buffer, error) {
	s := &store{m: m, id: m.nextID.Add(1)}
	s.lastUse.Store(m.clock.Add(1))
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, ErrClosed
	}
	s.idx = len(m.bufs)
	m.bufs = append(m.bufs, s)
	m.mu.Unlock()
	return newBuffer(s), nil
}

// Stats returns a snapshot of the Manager's counters. It works after Close
// too, and then shows zero memory and disk in use.
func (m *Manager) Stats() Stats {
	m.mu.Lock()
	n := len(m.bufs)
	m.mu.Unlock()
	return Stats{
		MemoryBudget:  m.opts.MemoryBudget,
		MemoryInUse:   m.budget.used(),
		DiskBudget:    m.opts.DiskBudget,
		DiskInUse:     m.diskInUse.Load(),
		Buffers:       n,
		BuffersOnDisk: int(m.onDisk.Load()),
		Spills:        m.spills.Load(),
		SpilledBytes:  m.spilledBytes.Load(),
		DiskWritten:   m.diskWritten.Load(),
		Evictions:     m.evictions.Load(),
		SpillErrors:   m.spillErrors.Load(),
		Leaked:        m.leaked.Load(),
	}
}

// Close closes every live buffer of the Manager, giving back their memory
// and removing their spill files, and makes later calls of NewBuffer and of
// the buffers' methods return ErrClosed. It waits for operations already in
// progress on those buffers to finish. It returns the errors of closing the
// spill files, joined, and ErrClosed if the Manager was already closed.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	m.closed = true
	bufs := append([]*store(nil), m.bufs...)
	m.mu.Unlock()

	var errs []error
	for _, b := range bufs {
		if err := b.Close(); err != nil && !errors.Is(err, ErrClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// reserveDisk takes n bytes of the disk budget, or returns ErrDiskBudget.
func (m *Manager) reserveDisk(n int64) error {
	limit := m.opts.DiskBudget
	for {
		cur := m.diskInUse.Load()
		if limit > 0 && cur+n > limit {
			return fmt.Errorf("%w: %d bytes in use of %d, %d more needed", ErrDiskBudget, cur, limit, n)
		}
		if m.diskInUse.CompareAndSwap(cur, cur+n) {
			return nil
		}
	}
}

// openSpill creates a spill file, within the limit on spill files.
func (m *Manager) openSpill() (*blockFile, error) {
	limit := int64(m.opts.MaxSpillFiles)
	for {
		cur := m.onDisk.Load()
		if limit > 0 && cur >= limit {
			return nil, fmt.Errorf("%w: %d open", ErrSpillFiles, cur)
		}
		if m.onDisk.CompareAndSwap(cur, cur+1) {
			break
		}
	}
	f, err := m.fs.createTemp(m.opts.TempDir, m.opts.Pattern)
	if err != nil {
		m.onDisk.Add(-1)
		return nil, err
	}
	return newBlockFile(f, m.seal), nil
}

// unregister removes a closed buffer from the live list.
func (m *Manager) unregister(b *store) {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := b.idx
	if i < 0 || i >= len(m.bufs) || m.bufs[i] != b {
		return
	}
	last := len(m.bufs) - 1
	m.bufs[i] = m.bufs[last]
	m.bufs[i].idx = i
	m.bufs[last] = nil
	m.bufs = m.bufs[:last]
	b.idx = -1
}

// candidates returns the live buffers other than self that hold memory, in
// the order the policy would roll them over.
func (m *Manager) candidates(self *store) []candidate {
	m.mu.Lock()
	cs := make([]candidate, 0, len(m.bufs))
	for _, b := range m.bufs {
		if b == self {
			continue
		}
		if mem := b.mem.Load(); mem > 0 {
			cs = append(cs, candidate{b: b, mem: mem, lastUse: b.lastUse.Load()})
		}
	}
	m.mu.Unlock()
	m.opts.Policy.order(cs)
	return cs
}

// makeRoom rolls other buffers over to disk until need bytes of the budget
// can be taken, takes them, and reports whether it did. self's lock is held
// by the caller; other buffers are only ever TryLocked (see lock.go), so a
// buffer in use elsewhere is skipped. Spill events of the victims are handed
// to self, to be delivered when self is unlocked.
func (m *Manager) makeRoom(need int64, self *store) bool {
	for _, c := range m.candidates(self) {
		v := c.b
		if !v.mu.TryLock() {
			continue
		}
		if !v.closed && v.mem.Load() > 0 {
			// A failed rollover is recorded in the victim's event and
			// in Stats; the victim's data stays intact. The writer goes
			// on with the next candidate.
			_ = v.rollover(SpillEvicted)
		}
		self.pending = append(self.pending, v.pending...)
		v.pending = nil
		v.mu.Unlock()
		if m.budget.tryAcquire(need) {
			return true
		}
	}
	// Memory may have been freed meanwhile by a Close or a Truncate.
	return m.budget.tryAcquire(need)
}
