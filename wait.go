package spool

import (
	"context"
	"errors"
	"fmt"
	"math"
)

// Waiting for disk budget.
//
// By default a write that needs disk budget (Options.DiskBudget) that is
// not there fails at once with ErrDiskBudget, having written what fitted.
// A Buffer made by NewBufferContext waits instead: its write, short of
// room, waits outside the buffer's lock, in line with the other waiting
// writers of the Manager (diskBudget.wait), until room for one block is
// freed, by a Close, a Truncate, a promotion or a larger SetDiskBudget;
// the room is granted to the buffer as a credit its next allocations
// spend, and the write goes on where it stopped. It waits as many times
// as it needs blocks, each time in line again, so waiters are served
// block by block, first come first served, and no large write starves
// behind small ones. While anyone waits, nobody else takes room (reserve
// fails as if the budget were spent), so waiting buffers are not
// overtaken by writers that do not wait; those fail, or roll themselves
// over, as they would at a spent budget.
//
// A writer that holds disk and waits for more may wait for another that
// does the same: when every buffer holding data on disk waits, the last
// to come is refused (diskBudget.breakDeadlock), and its owner gives its
// space up, by closing it, to let the others finish. With many uploads in
// flight that happens often. Buffer.ReserveDisk avoids it: an upload that
// knows its length waits for all of its room before it holds any, like an
// admission, and then writes without waiting.

// NewBufferContext returns a new, empty Buffer, like NewBuffer, whose
// writes (Write, WriteString, WriteByte, WriteAt, ReadFrom, and Rollover)
// wait for disk budget when Options.DiskBudget is spent, while ctx
// allows, instead of failing with ErrDiskBudget at once: an upload can
// wait for others to finish rather than be refused. Writers wait in line,
// first come first served, block by block. When ctx ends, the write
// returns what it wrote and an error wrapping both ErrDiskBudget and
// ctx.Err(); when the Manager or the Buffer is closed (from another
// goroutine), one wrapping ErrClosed, at once. Reads, and writes that
// need no disk, never wait. ctx must not be nil.
//
// Buffers that hold data on disk and wait for more could wait for each
// other for ever: when every buffer holding data on disk waits and the
// room is not there, the last of them to come is refused, with
// ErrDiskBudget, as if it did not wait; its owner should give its space
// up (Close) and may try again later. With many more uploads in flight
// than the budgets hold that happens often; Buffer.ReserveDisk, called
// before the first write, avoids it for uploads of known length.
//
// The context is the buffer's for its life, as a request's context is for
// its body: use NewBuffer, or a context that is never done, for buffers
// that outlive the request.
func (m *Manager) NewBufferContext(ctx context.Context) (*Buffer, error) {
	if ctx == nil {
		return nil, fmt.Errorf("%w: NewBufferContext with a nil Context", ErrInvalid)
	}
	ctx, stop := context.WithCancel(ctx)
	b, err := m.newBuffer(&waiting{ctx, stop})
	if err != nil {
		stop()
		return nil, err
	}
	return b, nil
}

// waitDisk is called after an operation failed with err, having written
// some or none of what it was given: if err wraps ErrDiskBudget and the
// buffer waits for room (NewBufferContext), it waits for room for a block
// and grants it to the buffer, and returns nil: the caller tries the rest
// again. Otherwise it returns the error the operation returns.
func (b *store) waitDisk(err error) error {
	if b.ctx == nil || !errors.Is(err, ErrDiskBudget) {
		return err
	}
	// A block's extent overlaps at most a chunk's worth of granules and
	// one more.
	need := b.m.cs + b.m.arena.gran
	if b.m.arena.hasSlack() {
		b.m.arena.reclaim() // freed space the files still hold: give it back first
	}
	werr := b.m.disk.wait(b.ctx, need, &b.holdsDisk)
	if werr == nil && b.keepGranted(need, false) {
		return nil
	}
	if werr == nil || errors.Is(werr, ErrClosed) || b.Closed() {
		// The buffer (Close cancels its wait) or the Manager was closed.
		return fmt.Errorf("%w (waiting for disk budget: %w)", ErrClosed, err)
	}
	return fmt.Errorf("%w: waiting for room: %w", err, werr)
}

// keepGranted adds need bytes of disk budget granted to b to its credit,
// and if reserved to what ReserveDisk set aside, unless b was closed
// meanwhile: then nothing will spend them, they go back, and keepGranted
// reports false. b.mu is not held.
func (b *store) keepGranted(need int64, reserved bool) bool {
	b.mu.Lock()
	closed := b.closed
	if !closed {
		b.credit += need
		if reserved {
			b.reserved += need
		}
	}
	b.mu.Unlock()
	if closed {
		b.m.disk.release(need)
	}
	return !closed
}

// reserveDisk implements Buffer.ReserveDisk.
func (b *store) reserveDisk(n int64) error {
	if n < 0 {
		return fmt.Errorf("%w: ReserveDisk(%d)", ErrNegativeSize, n)
	}
	b.mu.RLock()
	closed := b.closed
	// A buffer that holds disk, data or room set aside, does not wait: it
	// could wait for what it holds itself, or for others that wait for it.
	holding := b.credit > 0 || b.holdsDisk.Load()
	b.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	if n == 0 {
		return nil
	}
	need, err := b.m.reserveRoom(n)
	if err != nil {
		return err
	}
	if b.m.arena.hasSlack() {
		b.m.arena.reclaim() // freed space the files still hold: give it back first
	}
	if b.ctx == nil || holding {
		err = b.m.disk.reserve(need, nil)
	} else if err = b.m.disk.wait(b.ctx, need, &b.holdsDisk); err != nil && (errors.Is(err, ErrClosed) || b.Closed()) {
		err = fmt.Errorf("%w (waiting for disk budget)", ErrClosed)
	} else if err != nil && !errors.Is(err, ErrDiskBudget) {
		err = fmt.Errorf("%w: waiting for room: %w", ErrDiskBudget, err)
	}
	if err != nil {
		return fmt.Errorf("spool: reserve disk: %w", err)
	}
	if !b.keepGranted(need, true) { // closed while it waited
		return ErrClosed
	}
	return nil
}

// reserveRoom returns the disk budget that n bytes of data take in the
// spill arena: n rounded up to whole blocks (or granules, if those are
// larger), each block in an extent of a whole chunk aligned on granules
// while room is left (spill.writePart); one block more and two granules
// for a last block that went to disk part-filled (a rollover or an
// eviction writes it in an extent of its size, which may straddle two
// granules) and then moves to a whole chunk's extent as it is appended
// to, the extent it left staying charged until it is reused or punched
// out. It fails, wrapping ErrDiskBudget, if that overflows.
func (m *Manager) reserveRoom(n int64) (int64, error) {
	unit, extra := max(m.cs, m.arena.gran), max(m.cs, m.arena.gran)+2*m.arena.gran
	if n > math.MaxInt64-unit-extra {
		return 0, fmt.Errorf("spool: reserve disk: %w: %d bytes", ErrDiskBudget, n)
	}
	return (n+unit-1)/unit*unit + extra, nil
}

// dropCredit gives back the room that waits granted and was not spent:
// the credit beyond what ReserveDisk set aside (store.reserved), the room
// granted being taken to be spent first.
func (b *store) dropCredit() {
	b.mu.Lock()
	b.reserved = min(b.reserved, b.credit)
	c := b.credit - b.reserved
	b.credit = b.reserved
	b.mu.Unlock()
	b.m.disk.release(c)
}

// retry calls op, which writes the bytes from done on and returns how many
// it wrote, until it has written n bytes in all or fails with an error
// waitDisk does not wait out.
func (b *store) retry(n int, op func(done int) (int, error)) (int, error) {
	done, err := op(0)
	if err == nil || b.ctx == nil {
		return done, err
	}
	waited := false
	for err != nil && done < n {
		if err = b.waitDisk(err); err != nil {
			break
		}
		waited = true
		var k int
		k, err = op(done)
		done += k
	}
	if waited {
		b.dropCredit()
	}
	return done, err
}

// The writes of a Buffer, through retry.

func (b *store) writeWait(p []byte) (int, error) {
	if b.ctx == nil {
		return b.Write(p)
	}
	return b.retryWrite(p)
}

// retryWrite is writeWait's path for a buffer that waits. It is a
// function of its own so that the path of every other buffer, the one a
// slow upload's ReadFrom takes for each piece, does not carry its frame
// and closure (goroutine stacks: doc.go).
func (b *store) retryWrite(p []byte) (int, error) {
	return b.retry(len(p), func(done int) (int, error) { return b.Write(p[done:]) })
}

func (b *store) writeStringWait(s string) (int, error) {
	return b.retry(len(s), func(done int) (int, error) { return b.WriteString(s[done:]) })
}

func (b *store) writeAtWait(p []byte, off int64) (int, error) {
	return b.retry(len(p), func(done int) (int, error) { return b.WriteAt(p[done:], off+int64(done)) })
}

func (b *store) writeByteWait(c byte) error {
	_, err := b.retry(1, func(int) (int, error) {
		if err := b.WriteByte(c); err != nil {
			return 0, err
		}
		return 1, nil
	})
	return err
}

func (b *store) rolloverWait() error {
	_, err := b.retry(1, func(int) (int, error) {
		if err := b.Rollover(); err != nil {
			return 0, err
		}
		return 1, nil
	})
	return err
}
