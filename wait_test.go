package spool_test

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolkit/spool"
)

// waitManager returns a Manager of 4 KiB chunks with a memory budget of 4
// chunks and a disk budget of disk chunks.
func waitManager(t *testing.T, disk int64) *spool.Manager {
	t.Helper()
	m, err := spool.NewManager(spool.Options{ChunkSize: blk, MemoryBudget: 4 * blk, DiskBudget: disk * blk, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// untilWaiting waits until at least n writes wait for disk budget.
func untilWaiting(t *testing.T, m *spool.Manager, n int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for m.Stats().DiskWaiters < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d writes waiting for disk budget after a minute, want %d", m.Stats().DiskWaiters, n)
		}
		runtime.Gosched()
	}
}

// spilledFull fills the disk budget of m with one buffer, rolled over.
func spilledFull(t *testing.T, m *spool.Manager, chunks int) *spool.Buffer {
	t.Helper()
	b, _ := m.NewBuffer()
	b.Write(randBytes(77, chunks*blk))
	if err := b.Rollover(); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestWaitForDisk: a buffer made by NewBufferContext whose write needs
// disk budget that is spent waits, and completes, intact, once a Close
// frees room; a buffer made by NewBuffer fails at once, as always.
func TestWaitForDisk(t *testing.T) {
	m := waitManager(t, 8)
	hog := spilledFull(t, m, 8)
	plain, _ := m.NewBuffer()
	plain.Rollover()
	if n, err := plain.Write(make([]byte, blk)); !errors.Is(err, spool.ErrDiskBudget) || n != 0 {
		t.Fatalf("a plain buffer's write at a spent disk budget = %d, %v; want 0, ErrDiskBudget", n, err)
	}
	w, err := m.NewBufferContext(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	w.Rollover() // on disk: every write needs disk budget
	data := randBytes(5, 6*blk+100)
	type result struct {
		n   int
		err error
	}
	done := make(chan result)
	go func() {
		n, err := w.Write(data)
		done <- result{n, err}
	}()
	untilWaiting(t, m, 1)
	hog.Close()
	r := <-done
	if r.err != nil || r.n != len(data) {
		t.Fatalf("waiting Write = %d, %v; want %d, nil", r.n, r.err, len(data))
	}
	wantContent(t, w, data)
	st := m.Stats()
	if st.DiskWaiters != 0 || st.DiskWaitTime <= 0 || st.DiskInUse > st.DiskBudget {
		t.Errorf("after the wait: %+v", st)
	}
}

// TestWaitForDiskContext: a wait ends with the context, the write
// returning what it wrote and an error that is both ErrDiskBudget and the
// context's; with a deadline, DeadlineExceeded. Manager.Close wakes
// waiters with ErrClosed. The room a wait reserved and did not spend goes
// back.
func TestWaitForDiskContext(t *testing.T) {
	for _, how := range []string{"cancel", "deadline", "close"} {
		t.Run(how, func(t *testing.T) {
			m := waitManager(t, 8)
			hog := spilledFull(t, m, 6)
			defer runtime.KeepAlive(hog) // a Buffer dropped without Close is closed by the garbage collector
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			want := error(context.Canceled)
			if how == "deadline" {
				ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
				defer cancel()
				want = context.DeadlineExceeded
			}
			w, _ := m.NewBufferContext(ctx)
			w.Rollover()
			data := randBytes(6, 5*blk)
			done := make(chan error)
			var n int
			go func() {
				var err error
				n, err = w.WriteAt(data, 0)
				done <- err
			}()
			if how != "deadline" {
				untilWaiting(t, m, 1)
			}
			switch how {
			case "cancel":
				cancel()
			case "close":
				m.Close()
				want = spool.ErrClosed
			}
			err := <-done
			if !errors.Is(err, want) || (how != "close" && !errors.Is(err, spool.ErrDiskBudget)) {
				t.Fatalf("WriteAt = %d, %v; want an error wrapping %v", n, err, want)
			}
			if n != 2*blk {
				t.Errorf("WriteAt wrote %d bytes before waiting, want the 2 chunks that fitted", n)
			}
			if how == "close" {
				return
			}
			if st := m.Stats(); st.DiskWaiters != 0 || st.DiskInUse != 8*blk {
				t.Errorf("after the wait ended: %+v", st)
			}
			wantContent(t, w, data[:n])
		})
	}
}

// TestWaitForDiskFair: many waiting writers of mixed sizes, a few chunks
// of disk freed at a time: every write completes, intact (no starvation,
// no deadlock: the watchdog dumps the stacks if one hangs), the disk
// budget is never exceeded, and writers that do not wait are not let in
// ahead of them. Writers that hold disk and wait for more can deadlock
// (each holds what the others need); the last to come is then refused,
// and, as a client whose upload failed does, starts over.
func TestWaitForDiskFair(t *testing.T) {
	m := waitManager(t, 16)
	defer watchdog(t, 2*time.Minute)()
	var hogs []*spool.Buffer
	for range 8 {
		hogs = append(hogs, spilledFull(t, m, 2))
	}
	writers := sized(6, 12, 40)
	var wg sync.WaitGroup
	var refusals atomic.Int64
	errs := make(chan error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := randBytes(uint64(100+i), (1+i%5)*blk+i)
			for {
				w, _ := m.NewBufferContext(context.Background())
				w.Rollover()
				n, err := w.Write(data)
				if errors.Is(err, spool.ErrDiskBudget) {
					refusals.Add(1)
					w.Close() // give its space up, and start over
					continue
				}
				if err != nil || n != len(data) {
					errs <- err
					w.Close()
					return
				}
				got := make([]byte, len(data))
				if _, err := w.ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
					errs <- errors.New("a waiting writer's data did not read back")
				}
				w.Close()
				return
			}
		}()
	}
	untilWaiting(t, m, 1)
	// A writer that does not wait is refused while others wait.
	plain, _ := m.NewBuffer()
	plain.Rollover()
	if _, err := plain.Write(make([]byte, blk)); !errors.Is(err, spool.ErrDiskBudget) {
		t.Errorf("a plain write while others wait = %v, want ErrDiskBudget", err)
	}
	plain.Close()
	for _, h := range hogs {
		h.Close()
		if st := m.Stats(); st.DiskInUse > st.DiskBudget {
			t.Errorf("DiskInUse %d over the budget %d", st.DiskInUse, st.DiskBudget)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := m.Stats(); st.DiskWaiters != 0 || st.DiskInUse != 0 {
		t.Errorf("after every writer: %+v", st)
	}
	t.Logf("%d writers, %d refusals to end a deadlock", writers, refusals.Load())
}

// TestSetDiskBudget: growing lets waiters in at once; shrinking below the
// disk in use refuses new spills until usage falls below it.
func TestSetDiskBudget(t *testing.T) {
	m := waitManager(t, 8)
	a := spilledFull(t, m, 8)
	w, _ := m.NewBufferContext(context.Background())
	w.Rollover()
	done := make(chan error)
	go func() {
		_, err := w.Write(randBytes(7, 3*blk))
		done <- err
	}()
	untilWaiting(t, m, 1)
	if err := m.SetDiskBudget(16 * blk); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("a waiting write after the budget grew: %v", err)
	}
	if st := m.Stats(); st.DiskBudget != 16*blk || st.DiskInUse != 11*blk {
		t.Fatalf("after growing: %+v", st)
	}
	// Shrink below what is in use: nothing more goes to disk...
	if err := m.SetDiskBudget(4 * blk); err != nil {
		t.Fatal(err)
	}
	b, _ := m.NewBuffer()
	b.Write(make([]byte, blk))
	if err := b.Rollover(); !errors.Is(err, spool.ErrDiskBudget) {
		t.Errorf("a rollover over the shrunk budget = %v, want ErrDiskBudget", err)
	}
	// ... until usage falls below the new budget.
	a.Close()
	w.Close()
	if err := b.Rollover(); err != nil {
		t.Errorf("a rollover once usage fell: %v", err)
	}
	if err := m.SetDiskBudget(0); err != nil { // no limit
		t.Fatal(err)
	}
	c, _ := m.NewBuffer()
	c.Write(make([]byte, 64*blk))
	if err := c.Rollover(); err != nil {
		t.Errorf("a rollover with no disk budget: %v", err)
	}
	if err := m.SetDiskBudget(-1); !errors.Is(err, spool.ErrInvalidOptions) {
		t.Errorf("SetDiskBudget(-1) = %v", err)
	}
}

// TestNewBufferContextMisuse: a nil Context, a nil or closed Manager.
func TestNewBufferContextMisuse(t *testing.T) {
	m := waitManager(t, 8)
	//lint:ignore SA1012 a nil Context is the misuse tested
	if b, err := m.NewBufferContext(nil); b != nil || !errors.Is(err, spool.ErrInvalid) {
		t.Errorf("NewBufferContext(nil) = %v, %v", b, err)
	}
	var nilM *spool.Manager
	if _, err := nilM.NewBufferContext(context.Background()); !errors.Is(err, spool.ErrInvalid) {
		t.Errorf("nil Manager: %v", err)
	}
	m.Close()
	if _, err := m.NewBufferContext(context.Background()); !errors.Is(err, spool.ErrClosed) {
		t.Errorf("closed Manager: %v", err)
	}
	if err := m.SetDiskBudget(1 << 20); !errors.Is(err, spool.ErrClosed) {
		t.Errorf("SetDiskBudget on a closed Manager: %v", err)
	}
}

// TestWaitForDiskDeadlock: two waiting buffers that each hold part of the
// disk budget and wait for more would wait for each other for ever: the
// last to come is refused (ErrDiskBudget), and once its owner closes it,
// the other completes.
func TestWaitForDiskDeadlock(t *testing.T) {
	defer watchdog(t, 2*time.Minute)()
	m := waitManager(t, 8)
	a, _ := m.NewBufferContext(context.Background())
	b, _ := m.NewBufferContext(context.Background())
	a.Rollover()
	b.Rollover()
	da, db := randBytes(1, 6*blk), randBytes(2, 6*blk)
	// 3 chunks each: the budget is full.
	a.Write(da[:3*blk])
	b.Write(db[:3*blk])
	a.Write(da[3*blk : 4*blk])
	b.Write(db[3*blk : 4*blk])
	if st := m.Stats(); st.DiskInUse != 8*blk {
		t.Fatalf("setup: %+v", st)
	}
	errA := make(chan error)
	go func() {
		_, err := a.Write(da[4*blk:])
		errA <- err
	}()
	untilWaiting(t, m, 1)
	_, errB := b.Write(db[4*blk:]) // the last holder to wait: refused
	if !errors.Is(errB, spool.ErrDiskBudget) {
		t.Fatalf("the second holder's write = %v, want ErrDiskBudget (refused to end the deadlock)", errB)
	}
	b.Close()
	if err := <-errA; err != nil {
		t.Fatalf("the first holder's write after the second closed: %v", err)
	}
	wantContent(t, a, da)
}

// TestReserveDisk: ReserveDisk sets room aside at once (it counts in
// DiskInUse), the buffer's writes and rollover spend it rather than the
// budget, Close gives back what is left, and a reservation that does not
// fit fails with ErrDiskBudget and takes nothing.
func TestReserveDisk(t *testing.T) {
	m := waitManager(t, 16)
	b, _ := m.NewBuffer()
	data := randBytes(5, 5*blk+100)
	if err := b.ReserveDisk(int64(len(data))); err != nil {
		t.Fatal(err)
	}
	reserved := m.Stats().DiskInUse
	// 6 blocks, one more, and two granules (of 4 KiB, a block here).
	if reserved != 9*blk {
		t.Fatalf("DiskInUse after ReserveDisk(%d) = %d, want %d", len(data), reserved, 9*blk)
	}
	// Another buffer cannot take the reserved room.
	other, _ := m.NewBuffer()
	_, werr := other.Write(randBytes(6, 9*blk))
	rerr := other.Rollover()
	if !errors.Is(werr, spool.ErrDiskBudget) && !errors.Is(rerr, spool.ErrDiskBudget) {
		t.Fatalf("writing and rolling over 9 blocks into the 7 not reserved: %v, %v; want ErrDiskBudget", werr, rerr)
	}
	if st := m.Stats(); st.DiskInUse > 16*blk {
		t.Fatalf("DiskInUse %d past the budget", st.DiskInUse)
	}
	if err := other.ReserveDisk(9 * blk); !errors.Is(err, spool.ErrDiskBudget) {
		t.Fatalf("ReserveDisk past the budget: %v, want ErrDiskBudget", err)
	}
	other.Close()
	if st := m.Stats(); st.DiskInUse != reserved {
		t.Fatalf("DiskInUse after the refusals = %d, want %d", st.DiskInUse, reserved)
	}
	// Its own writes spend the reservation: DiskInUse does not move.
	if n, err := b.Write(data); err != nil || n != len(data) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if err := b.Rollover(); err != nil {
		t.Fatal(err)
	}
	if st := m.Stats(); st.DiskInUse != reserved {
		t.Fatalf("DiskInUse after writing and rolling over the reserved bytes = %d, want %d (spent from the reservation)", st.DiskInUse, reserved)
	}
	wantContent(t, b, data)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if st := m.Stats(); st.DiskInUse != 0 {
		t.Fatalf("DiskInUse after Close = %d, want 0", st.DiskInUse)
	}
}

// TestReserveDiskWait: a buffer of NewBufferContext waits in line for the
// room it reserves, until a Close frees it; a context that ends stops the
// wait with an error wrapping ErrDiskBudget and the context's; the
// Manager's Close, with ErrClosed. Nothing is reserved by a wait that
// failed.
func TestReserveDiskWait(t *testing.T) {
	defer watchdog(t, 2*time.Minute)()
	m := waitManager(t, 8)
	hog := spilledFull(t, m, 8)
	b, _ := m.NewBufferContext(context.Background())
	done := make(chan error)
	go func() { done <- b.ReserveDisk(3 * blk) }()
	untilWaiting(t, m, 1)
	hog.Close()
	if err := <-done; err != nil {
		t.Fatalf("ReserveDisk after a Close freed room: %v", err)
	}
	if st := m.Stats(); st.DiskInUse != 6*blk || st.DiskWaiters != 0 {
		t.Fatalf("after the wait: DiskInUse %d (want %d), DiskWaiters %d", st.DiskInUse, 6*blk, st.DiskWaiters)
	}

	ctx, cancel := context.WithCancel(context.Background())
	c, _ := m.NewBufferContext(ctx)
	go func() { done <- c.ReserveDisk(3 * blk) }()
	untilWaiting(t, m, 1)
	cancel()
	if err := <-done; !errors.Is(err, spool.ErrDiskBudget) || !errors.Is(err, context.Canceled) {
		t.Fatalf("ReserveDisk when its context ends: %v, want ErrDiskBudget and context.Canceled", err)
	}
	if st := m.Stats(); st.DiskInUse != 6*blk {
		t.Fatalf("DiskInUse after a failed wait = %d, want %d", st.DiskInUse, 6*blk)
	}

	d, _ := m.NewBufferContext(context.Background())
	go func() { done <- d.ReserveDisk(3 * blk) }()
	untilWaiting(t, m, 1)
	m.Close()
	if err := <-done; !errors.Is(err, spool.ErrClosed) {
		t.Fatalf("ReserveDisk when the Manager closes: %v, want ErrClosed", err)
	}
}

// TestReserveDiskMisuse: bad calls fail with a clear error.
func TestReserveDiskMisuse(t *testing.T) {
	m := waitManager(t, 8)
	var nilBuf *spool.Buffer
	if err := nilBuf.ReserveDisk(1); !errors.Is(err, spool.ErrInvalid) {
		t.Errorf("nil Buffer: %v", err)
	}
	b, _ := m.NewBufferContext(context.Background())
	if err := b.ReserveDisk(-1); !errors.Is(err, spool.ErrNegativeSize) {
		t.Errorf("ReserveDisk(-1): %v", err)
	}
	if err := b.ReserveDisk(100 * blk); !errors.Is(err, spool.ErrDiskBudget) {
		t.Errorf("ReserveDisk of more than the whole budget, waiting: %v, want ErrDiskBudget at once", err)
	}
	if err := b.ReserveDisk(1<<63 - 1); !errors.Is(err, spool.ErrDiskBudget) {
		t.Errorf("ReserveDisk(MaxInt64): %v", err)
	}
	if err := b.ReserveDisk(0); err != nil {
		t.Errorf("ReserveDisk(0): %v", err)
	}
	b.Close()
	if err := b.ReserveDisk(1); !errors.Is(err, spool.ErrClosed) {
		t.Errorf("closed Buffer: %v", err)
	}
	if st := m.Stats(); st.DiskInUse != 0 {
		t.Errorf("DiskInUse after failed reservations = %d, want 0", st.DiskInUse)
	}
}

// TestReserveDiskNoRefusals: uploads that reserve their length before they
// write never hold disk while waiting for more, so none is ever refused to
// end a deadlock, however many more are in flight than the disk budget
// holds; every one completes intact.
func TestReserveDiskNoRefusals(t *testing.T) {
	defer watchdog(t, 2*time.Minute)()
	m := waitManager(t, 16)
	var wg sync.WaitGroup
	var refused atomic.Int64
	for i := range 12 {
		wg.Go(func() {
			for j := range 4 {
				data := randBytes(uint64(100*i+j), (3+i%3)*blk+i*37)
				b, _ := m.NewBufferContext(context.Background())
				if err := b.ReserveDisk(int64(len(data))); err != nil {
					t.Errorf("ReserveDisk: %v", err)
					b.Close()
					return
				}
				for off := 0; off < len(data); off += 1000 {
					if _, err := b.Write(data[off:min(off+1000, len(data))]); err != nil {
						refused.Add(1)
						t.Errorf("Write after ReserveDisk: %v", err)
						break
					}
					runtime.Gosched() // uploads in flight together
				}
				if err := b.Rollover(); err != nil {
					t.Errorf("Rollover after ReserveDisk: %v", err)
				}
				got := make([]byte, len(data))
				if _, err := b.ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
					t.Errorf("read back: %v, intact %v", err, bytes.Equal(got, data))
				}
				b.Close()
			}
		})
	}
	wg.Wait()
	if st := m.Stats(); st.DiskInUse != 0 || refused.Load() != 0 {
		t.Errorf("at the end: DiskInUse %d, %d writes failed", st.DiskInUse, refused.Load())
	}
}

// TestWaitForDiskUploads: many uploads through NewBufferContext, with far
// more in flight than the budgets hold and no reservation, never hang:
// whenever every holder of disk waits, one is refused, including when the
// last holder that did not wait let go of its data without freeing a
// granule, or an eviction made a waiting buffer a holder (the waiters must
// look again then: before that, this test hung in its first rounds). An upload refused is retried from its start; each completes
// intact.
func TestWaitForDiskUploads(t *testing.T) {
	defer watchdog(t, time.Minute)()
	m := waitManager(t, 16)
	rounds := 30
	if testing.Short() {
		rounds = 10
	}
	var refused atomic.Int64
	for round := range rounds {
		var wg sync.WaitGroup
		for i := range 12 {
			wg.Go(func() {
				for j := range 4 {
					data := randBytes(uint64(round*1000+i*10+j), (3+i%3)*blk+i*37+j)
				retry:
					b, _ := m.NewBufferContext(context.Background())
					for off := 0; off < len(data); off += 1000 {
						if _, err := b.Write(data[off:min(off+1000, len(data))]); err != nil {
							if !errors.Is(err, spool.ErrDiskBudget) {
								t.Errorf("Write: %v", err)
								b.Close()
								return
							}
							refused.Add(1)
							b.Close()
							goto retry
						}
						runtime.Gosched() // uploads in flight together
					}
					got := make([]byte, len(data))
					if _, err := b.ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
						t.Errorf("read back: %v, intact %v", err, bytes.Equal(got, data))
					}
					b.Close()
				}
			})
		}
		wg.Wait()
	}
	if st := m.Stats(); st.DiskInUse != 0 || st.DiskWaiters != 0 {
		t.Errorf("at the end: %+v", st)
	}
	t.Logf("%d writes refused to end a deadlock, their uploads retried", refused.Load())
}

// TestReserveDiskHolderDoesNotWait: a buffer that already holds room set
// aside (or data on disk) does not wait for more: it could wait for its
// own room, or for another that waits for it, for ever. It takes the room
// at once or fails with ErrDiskBudget. (Both cases below waited until
// their contexts ended before.)
func TestReserveDiskHolderDoesNotWait(t *testing.T) {
	defer watchdog(t, time.Minute)()
	m := waitManager(t, 16)
	b, _ := m.NewBufferContext(context.Background())
	if err := b.ReserveDisk(6 * blk); err != nil { // 9 blocks of 16
		t.Fatal(err)
	}
	if err := b.ReserveDisk(6 * blk); !errors.Is(err, spool.ErrDiskBudget) { // 9 more
		t.Fatalf("a second reservation past the budget: %v, want ErrDiskBudget at once", err)
	}
	if err := b.ReserveDisk(2 * blk); err != nil { // 5 more: fits
		t.Fatalf("a second reservation that fits: %v", err)
	}
	b.Close()

	// Two uploads each reserving in two steps would wait for each other.
	c, _ := m.NewBufferContext(context.Background())
	d, _ := m.NewBufferContext(context.Background())
	defer c.Close()
	defer d.Close()
	if err := c.ReserveDisk(3 * blk); err != nil { // 6 blocks
		t.Fatal(err)
	}
	if err := d.ReserveDisk(3 * blk); err != nil { // 12 of 16
		t.Fatal(err)
	}
	errs := make(chan error, 2)
	go func() { errs <- c.ReserveDisk(3 * blk) }()
	go func() { errs <- d.ReserveDisk(3 * blk) }()
	for range 2 {
		if err := <-errs; !errors.Is(err, spool.ErrDiskBudget) {
			t.Errorf("a second step past the budget: %v, want ErrDiskBudget", err)
		}
	}
	if st := m.Stats(); st.DiskInUse != 12*blk || st.DiskWaiters != 0 {
		t.Errorf("after the refusals: %+v", st)
	}
}

// slackManager returns a Manager whose one spill file holds two freed
// blocks still charged (slack, under the 1 MiB that makes a reclaim on its
// own) next to a live one.
func slackManager(t *testing.T) *spool.Manager {
	t.Helper()
	m, err := spool.NewManager(spool.Options{ChunkSize: blk, MemoryBudget: 4 * blk, DiskBudget: 8 * blk, MaxSpillFiles: 1, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	a, _ := m.NewBuffer()
	a.Write(randBytes(1, 2*blk))
	if err := a.Rollover(); err != nil {
		t.Fatal(err)
	}
	keep, _ := m.NewBuffer()
	keep.Write(randBytes(2, blk))
	if err := keep.Rollover(); err != nil {
		t.Fatal(err)
	}
	a.Close()
	if st := m.Stats(); st.DiskInUse != 3*blk || st.DiskLive != blk {
		t.Fatalf("setup: no slack to reclaim (%+v)", st)
	}
	return m
}

// TestReserveDiskReclaimsSlack: ReserveDisk gives back freed space the
// files still hold before it decides the room is not there, as a write
// does: it neither fails (NewBuffer) nor waits for ever (NewBufferContext)
// for room only slack holds.
func TestReserveDiskReclaimsSlack(t *testing.T) {
	defer watchdog(t, time.Minute)()
	c, _ := slackManager(t).NewBuffer()
	if err := c.ReserveDisk(3 * blk); err != nil { // 6 blocks: fits with 1 live
		t.Errorf("NewBuffer: %v", err)
	}
	d, _ := slackManager(t).NewBufferContext(context.Background())
	if err := d.ReserveDisk(3 * blk); err != nil {
		t.Errorf("NewBufferContext: %v", err)
	}
}

// TestSetDiskBudgetRefusesWaiterTooLarge: a waiter that asked for more
// than a lowered disk budget is refused (it would wait for ever and hold
// up those behind it); a smaller one behind it goes on when room comes.
func TestSetDiskBudgetRefusesWaiterTooLarge(t *testing.T) {
	defer watchdog(t, time.Minute)()
	m := waitManager(t, 16)
	hog := spilledFull(t, m, 16)
	r, _ := m.NewBufferContext(context.Background())
	defer r.Close()
	rerr := make(chan error, 1)
	go func() { rerr <- r.ReserveDisk(10 * blk) }() // 13 blocks
	untilWaiting(t, m, 1)
	w, _ := m.NewBufferContext(context.Background())
	defer w.Close()
	w.Rollover()
	werr := make(chan error, 1)
	go func() { _, err := w.Write(randBytes(3, blk)); werr <- err }()
	untilWaiting(t, m, 2)
	if err := m.SetDiskBudget(8 * blk); err != nil {
		t.Fatal(err)
	}
	if err := <-rerr; !errors.Is(err, spool.ErrDiskBudget) {
		t.Fatalf("a reservation past the lowered budget: %v, want ErrDiskBudget", err)
	}
	hog.Close()
	if err := <-werr; err != nil {
		t.Fatalf("the write behind it, once room came: %v", err)
	}
}

// TestReserveDiskKeptAcrossWaits: the room a write's wait was granted and
// did not spend is given back when the write ends, but not the room
// ReserveDisk set aside, even when the reservation was made while the
// write waited (it was given back with the rest before).
func TestReserveDiskKeptAcrossWaits(t *testing.T) {
	defer watchdog(t, time.Minute)()
	m := waitManager(t, 16)
	hog := spilledFull(t, m, 16)
	b, _ := m.NewBufferContext(context.Background())
	defer b.Close()
	b.Rollover()
	data := randBytes(4, 3*blk)
	werr := make(chan error, 1)
	go func() { _, err := b.Write(data); werr <- err }()
	untilWaiting(t, m, 1)
	rerr := make(chan error, 1)
	go func() { rerr <- b.ReserveDisk(4 * blk) }() // 7 blocks of room
	untilWaiting(t, m, 2)
	hog.Close()
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if err := <-rerr; err != nil {
		t.Fatal(err)
	}
	// 3 blocks written, and the 7 reserved less what the write may have
	// spent of them (its own data: at most its 3 blocks).
	if st := m.Stats(); st.DiskInUse < 7*blk {
		t.Errorf("DiskInUse %d after the write and the reservation: the reservation was given back", st.DiskInUse)
	}
	wantContent(t, b, data)
}

// TestReserveDiskOverflow: with no disk budget, reservations that would
// take DiskInUse past MaxInt64 fail instead of wrapping around.
func TestReserveDiskOverflow(t *testing.T) {
	m, err := spool.NewManager(spool.Options{ChunkSize: blk, MemoryBudget: 4 * blk, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	a, _ := m.NewBuffer()
	b, _ := m.NewBuffer()
	if err := a.ReserveDisk(1 << 62); err != nil {
		t.Fatal(err)
	}
	if err := b.ReserveDisk(1 << 62); !errors.Is(err, spool.ErrDiskBudget) {
		t.Errorf("a reservation past MaxInt64: %v, want ErrDiskBudget", err)
	}
	if st := m.Stats(); st.DiskInUse < 0 {
		t.Errorf("DiskInUse %d", st.DiskInUse)
	}
	a.Close()
	b.Close()
	if st := m.Stats(); st.DiskInUse != 0 {
		t.Errorf("DiskInUse after Close: %d", st.DiskInUse)
	}
}

// TestReserveDiskSmallPieces: uploads that reserve their length and then
// append in small pieces to a spilled buffer (whose blocks would otherwise
// move to larger extents as they grow, leaving the room they grew out of
// to the shared budget) never run out of their reservation: none waits
// part way or is refused, with many more in flight than the budget holds.
// (1 to 40 per run were refused before.)
func TestReserveDiskSmallPieces(t *testing.T) {
	defer watchdog(t, 2*time.Minute)()
	for _, rollover := range []bool{false, true} {
		m, err := spool.NewManager(spool.Options{ChunkSize: blk, MemoryBudget: 4 * blk, DiskBudget: 16 * blk, MaxSpillFiles: 1, TempDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		var refused atomic.Int64
		var wg sync.WaitGroup
		for w := range 16 {
			wg.Go(func() {
				for j := range 10 {
					size := blk/2 + (w*977+j*1231)%(6*blk)
					data := randBytes(uint64(w*1000+j), size)
					b, _ := m.NewBufferContext(context.Background())
					if rollover {
						b.Rollover()
					}
					if err := b.ReserveDisk(int64(size)); err != nil {
						t.Errorf("ReserveDisk: %v", err)
						b.Close()
						return
					}
					for off := 0; off < len(data); {
						k := min(len(data)-off, 100+(off*7+j)%1000)
						n, err := b.Write(data[off : off+k])
						off += n
						if err != nil {
							refused.Add(1)
							t.Errorf("a reserved upload's write at %d of %d: %v", off, size, err)
							break
						}
						runtime.Gosched()
					}
					got := make([]byte, len(data))
					if _, err := b.ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
						t.Errorf("read back: %v, intact %v", err, bytes.Equal(got, data))
					}
					b.Close()
				}
			})
		}
		wg.Wait()
		if st := m.Stats(); st.DiskInUse != 0 || refused.Load() != 0 {
			t.Errorf("rollover %v: at the end %+v, %d writes failed", rollover, st, refused.Load())
		}
		m.Close()
	}
}

// TestCloseWakesWaiter: Close of a buffer whose write waits for disk, from
// another goroutine, ends the wait at once: the write returns what it
// wrote and an error wrapping ErrClosed, the waiter leaves the line (a
// waiter behind it that fits is served), and no room stays charged once
// every buffer is closed. The same for ReserveDisk.
func TestCloseWakesWaiter(t *testing.T) {
	defer watchdog(t, time.Minute)() // a Close that does not wake the waiter hangs
	for _, how := range []string{"write", "reserve"} {
		t.Run(how, func(t *testing.T) {
			m := waitManager(t, 8)
			hog := spilledFull(t, m, 6)
			w, _ := m.NewBufferContext(context.Background())
			w.Rollover()
			done := make(chan error)
			go func() {
				var err error
				if how == "write" {
					_, err = w.WriteAt(randBytes(6, 5*blk), 0) // 2 chunks fit, 3 more wait
				} else {
					err = w.ReserveDisk(5 * blk)
				}
				done <- err
			}()
			untilWaiting(t, m, 1)
			// A second waiter, behind the first, that fits in what is left
			// once the first is gone.
			small, _ := m.NewBufferContext(context.Background())
			small.Rollover()
			smallDone := make(chan error)
			go func() {
				_, err := small.Write(randBytes(8, blk))
				smallDone <- err
			}()
			untilWaiting(t, m, 2)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if err := <-done; !errors.Is(err, spool.ErrClosed) {
				t.Fatalf("the waiting %s after Close: %v; want an error wrapping ErrClosed", how, err)
			}
			if err := <-smallDone; err != nil {
				t.Fatalf("the waiter behind the closed one: %v", err)
			}
			small.Close()
			hog.Close()
			if st := m.Stats(); st.DiskInUse != 0 || st.DiskWaiters != 0 {
				t.Errorf("with every buffer closed: DiskInUse %d, DiskWaiters %d; want 0, 0", st.DiskInUse, st.DiskWaiters)
			}
		})
	}
}

// TestCloseRacesGrant: buffers closed while their writes wait, as room is
// freed: whichever comes first, the room a wait was granted is never left
// charged to a closed buffer.
func TestCloseRacesGrant(t *testing.T) {
	defer watchdog(t, time.Minute)()
	m := waitManager(t, 8)
	for i := range sized(50, 200, 400) {
		hog := spilledFull(t, m, 7)
		w, _ := m.NewBufferContext(context.Background())
		w.Rollover()
		done := make(chan error)
		go func() {
			_, err := w.Write(randBytes(uint64(i), 3*blk))
			done <- err
		}()
		untilWaiting(t, m, 1)
		go hog.Close()
		w.Close()
		if err := <-done; err != nil && !errors.Is(err, spool.ErrClosed) {
			t.Fatalf("iteration %d: the waiting write: %v; want nil or ErrClosed", i, err)
		}
		for m.Stats().Buffers != 0 {
			runtime.Gosched()
		}
		if st := m.Stats(); st.DiskInUse != 0 || st.DiskWaiters != 0 {
			t.Fatalf("iteration %d: with every buffer closed: DiskInUse %d, DiskWaiters %d; want 0, 0", i, st.DiskInUse, st.DiskWaiters)
		}
	}
}

// TestNewBufferContextRacesClose: buffers made by NewBufferContext while
// Manager.Close runs are either refused with ErrClosed or closed by it,
// their waits ended (under -race: the buffer's context is set before
// Close can see the buffer).
func TestNewBufferContextRacesClose(t *testing.T) {
	for range sized(20, 100, 200) {
		m := waitManager(t, 8)
		done := make(chan error)
		var made atomic.Int64
		go func() {
			for {
				if _, err := m.NewBufferContext(context.Background()); err != nil {
					done <- err
					return
				}
				made.Add(1)
			}
		}()
		for made.Load() < 100 {
			runtime.Gosched()
		}
		m.Close()
		if err := <-done; !errors.Is(err, spool.ErrClosed) {
			t.Fatalf("NewBufferContext after Close: %v; want ErrClosed", err)
		}
	}
}

// TestWaitForDiskHolderAfterClose: a write that holds disk and waits for
// more, while the only other holder of disk closes, is served with the
// space that close freed, not refused as if every holder waited: freed
// space the files still hold (slack, in frames the two shared) is given
// back first.
func TestWaitForDiskHolderAfterClose(t *testing.T) {
	defer watchdog(t, time.Minute)()
	for i := range sized(5, 20, 50) {
		m := waitManager(t, 8)
		hog := spilledFull(t, m, 6)
		w, _ := m.NewBufferContext(context.Background())
		w.Rollover()
		data := randBytes(uint64(i), 5*blk)
		done := make(chan error)
		go func() {
			_, err := w.WriteAt(data, 0) // 2 chunks fit, then it waits holding them
			done <- err
		}()
		untilWaiting(t, m, 1)
		hog.Close()
		if err := <-done; err != nil {
			t.Fatalf("round %d: the waiting write after the other holder closed: %v", i, err)
		}
		wantContent(t, w, data)
		w.Close()
	}
}
