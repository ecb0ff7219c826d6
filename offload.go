package spool

import (
	"sync"
	"sync/atomic"
)

// The offloader: the goroutines that roll buffers over for writers.
//
// Rolling a buffer over to disk, its own or another's as an eviction, is
// the deepest call spool makes on a writer's goroutine: the victim search,
// the spill arena's allocation under its segment's lock, the checksum and
// the pwrite lie about 2 KiB of stack below Buffer.ReadFrom, more when a
// lock there is contended. A goroutine that was already using 1.2 KiB or
// more when it called (an upload handler in io.Copy) grows its stack from
// 4 to 8 KiB for that call, and keeps the 8 KiB while it waits for its
// next piece: Go halves a stack only at a collection, and a server that
// allocates little collects rarely. Every upload rolls over once, so in
// the bench's slow scenario (10,000 uploads through io.Copy under a 16
// MiB budget) the uploads' stacks took 65-74 MiB, against 40 MiB for the
// same goroutines with a sink that discards: twice the budget again,
// outside it.
//
// So a write that rolls its buffer over (store.spill) hands the rollover
// to a goroutine of the Manager's offloader and waits on a channel, at a
// depth its stack has room for; and so do evictions, while more than
// offloadEvictionsPast writes are making room at once (Manager.making):
// then each writer would grow its stack, whereas a handoff while few
// wait would only lengthen the waiting write. The worker acts for the
// writer, under the locks the writer holds (lock.go). The offloader starts
// goroutines as they are needed, up to offloadWorkers, each keeping the
// stack it grew; a writer that finds them all busy waits for one.
// Manager.Close stops them once every buffer is closed; a call after that
// (a stage of a ReadFrom that outlived its buffer) runs on the caller's
// goroutine.
//
// The rest of a write to a spilled buffer, the pwrite of each piece and
// the allocation of a block's extent, stays on the writer's goroutine,
// kept shallow instead (spill.writePart, osFile.WriteAt): handing each
// piece over would cost two goroutine switches per write.
type offloader struct {
	reqs  chan *offloadCall // unbuffered: a send is a handoff
	stop  chan struct{}     // closed by close
	max   int32
	calls sync.Pool // of *offloadCall

	// workers is the goroutines started. mu, a leaf, guards starting
	// one and closing stop, so that no worker starts (wg.Add) once close
	// waits for them (wg.Wait).
	workers atomic.Int32
	mu      sync.Mutex
	closed  bool
	wg      sync.WaitGroup
}

// An offloadCall is one call handed to a worker, with its results: an
// eviction of v until until reports true, of all of v if whole
// (Manager.evict), or, if v is nil,
// a rollover of b for the reason why (store.rollover). It is typed rather
// than a closure, which would put the caller's variables on the heap at
// every call of freeMemory, offloaded or not.
type offloadCall struct {
	v     *store
	until func() bool
	b     *store
	why   SpillReason

	events    []SpillEvent // the eviction's, if any: its spill event
	satisfied bool
	whole     bool
	err       error
	panic     any // what the call panicked with, re-raised by the caller
	// done is done once the call is made. A WaitGroup, not a channel:
	// each writer waiting for a worker holds a call, thousands of them
	// while many writes are short of memory.
	done sync.WaitGroup
}

// evict calls m.evict(v, until, events, whole) on one of the offloader's
// goroutines.
func (o *offloader) evict(v *store, until func() bool, events *[]SpillEvent, whole bool) (bool, error) {
	c := o.calls.Get().(*offloadCall)
	c.v, c.until, c.events, c.whole = v, until, c.events[:0], whole
	o.run(c)
	*events = append(*events, c.events...)
	satisfied, err := c.satisfied, c.err
	o.release(c)
	return satisfied, err
}

// rollover calls b.rollover(why) on one of the offloader's goroutines.
func (o *offloader) rollover(b *store, why SpillReason) error {
	c := o.calls.Get().(*offloadCall)
	c.b, c.why = b, why
	o.run(c)
	err := c.err
	o.release(c)
	return err
}

// release clears c and puts it back in the pool, or panics with what its
// call panicked with.
func (o *offloader) release(c *offloadCall) {
	p := c.panic
	c.v, c.until, c.b, c.why = nil, nil, nil, 0
	c.events, c.satisfied, c.whole, c.err, c.panic = c.events[:0], false, false, nil, nil
	o.calls.Put(c)
	if p != nil {
		panic(p)
	}
}

// run has a worker make call c, and returns once it is made.
func (o *offloader) run(c *offloadCall) {
	c.done.Add(1)
	select {
	case o.reqs <- c: // an idle worker took it
	default:
		o.wait(c)
	}
	c.done.Wait()
}

// wait hands c to a worker when none is idle: it starts one if there are
// fewer than max, and waits for one to take c; after stop, it makes the
// call itself. It is apart from run because its select takes 300 bytes
// of stack, which the usual handoff to an idle worker does not need.
func (o *offloader) wait(c *offloadCall) {
	if o.workers.Load() < o.max {
		o.start()
	}
	select {
	case o.reqs <- c:
	case <-o.stop:
		o.call(c)
	}
}

// start starts a worker, unless there are max already or the offloader
// is closed.
func (o *offloader) start() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed || o.workers.Load() >= o.max {
		return
	}
	o.workers.Add(1)
	o.wg.Add(1)
	go o.work()
}

// work is the loop of one of the offloader's goroutines.
func (o *offloader) work() {
	defer o.wg.Done()
	for {
		select {
		case c := <-o.reqs:
			o.call(c)
		case <-o.stop:
			return
		}
	}
}

// call makes call c, keeping what it panicked with for the caller, and
// marks c.done.
func (o *offloader) call(c *offloadCall) {
	defer func() {
		c.panic = recover()
		c.done.Done()
	}()
	if c.v != nil {
		c.satisfied, c.err = c.v.m.evict(c.v, c.until, &c.events, c.whole)
	} else {
		c.err = c.b.rollover(c.why)
	}
}

// offloadEvictionsPast is the writes making room for themselves at once
// (Manager.making) past which evictions go to the offloader too. While
// few writes are short of memory, their evictions run on their own
// goroutines: few stacks grow, and a handoff would lengthen the write
// that waits for it (in the bench's uploads scenario, 200 writers under a
// 64 MiB budget, the write latency p99.9 was 2.8x a temporary file's when
// every eviction past 2 was handed over, against 2.0x past 8 and 2.1x
// never, medians of 6-8 alternating runs). When many are, as with 10,000
// slow uploads short of memory, every writer would grow its stack.
const offloadEvictionsPast = 8

// offloadWorkers is the most goroutines a Manager's offloader runs. A
// rollover or an eviction is mostly the wait for its pwrites, so they are
// not bounded by the CPUs. In the bench's slow scenario (2 CPUs, three
// alternating runs each) the run took 3.7-4.2 s with 4 workers, 3.1-3.2 s
// with 16, and 3.0-3.7 s with 64, against 3.1-3.8 s for the code before
// the offloader.
const offloadWorkers = 16

// newOffloader returns an offloader of at most max goroutines.
func newOffloader(max int) *offloader {
	return &offloader{
		reqs: make(chan *offloadCall),
		stop: make(chan struct{}),
		max:  int32(max),
		calls: sync.Pool{New: func() any {
			return new(offloadCall)
		}},
	}
}

// close stops the offloader's goroutines and waits for them to end. The
// caller makes no call in progress depend on it: Manager.Close calls it
// once every buffer is closed.
func (o *offloader) close() {
	o.mu.Lock()
	if !o.closed {
		o.closed = true
		close(o.stop)
	}
	o.mu.Unlock()
	o.wg.Wait()
}
