package main

import (
	"bytes"
	"runtime/trace"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestTailOf traces 2,000 quick marked writes and 3 that each wait 50 ms
// for a sync.Mutex another goroutine holds, and checks that tailOf finds
// the 3 slow ones (at or above the p99.9) and charges most of their time
// to waiting on that lock, at the function that took it, and most of the
// waits to what the holder did meanwhile: it slept.
func TestTailOf(t *testing.T) {
	if trace.IsEnabled() {
		t.Skip("a trace is already in progress")
	}
	var out bytes.Buffer
	if err := trace.Start(&out); err != nil {
		t.Fatal(err)
	}
	for range 2000 {
		markWrite("b")
		markWrite("e")
	}
	for range 3 {
		lockedWrite()
	}
	trace.Stop()

	tail, err := tailOf(&out)
	if err != nil {
		t.Fatal(err)
	}
	if tail.Writes != 2003 || tail.Slow < 3 || tail.Slow > 5 {
		t.Fatalf("tail: %d writes, %d slow; want 2003 and the 3 that waited", tail.Writes, tail.Slow)
	}
	if len(tail.Parts) == 0 {
		t.Fatal("no parts")
	}
	top := tail.Parts[0]
	if !strings.HasPrefix(top.What, "waited on a lock at ") || !strings.Contains(top.What, "lockedWrite") || top.Writes != 3 {
		t.Errorf("top part: %+v; want the wait on the lock in lockedWrite, most of 3 writes", top)
	}
	if top.Seconds < 0.5*tail.Seconds {
		t.Errorf("the lock wait is %.3f s of %.3f s of slow writes", top.Seconds, tail.Seconds)
	}
	// Meanwhile the holder slept, with the lock held.
	if len(tail.Holders) == 0 {
		t.Fatal("no holders")
	}
	if h := tail.Holders[0]; !strings.HasPrefix(h.What, "waited (sleep)") || h.Writes != 3 || h.Seconds < 0.5*tail.LockWait {
		t.Errorf("top holder part: %+v of %.3f s of lock waits; want the holder's sleep, most of the waits of 3 writes", h, tail.LockWait)
	}
	if t.Failed() {
		t.Logf("%+v", tail)
	}
}

// lockedWrite marks a write that waits for a lock another goroutine holds
// for 50 ms.
func lockedWrite() {
	var mu sync.Mutex
	held, done := make(chan struct{}), make(chan struct{})
	go func() {
		mu.Lock()
		close(held)
		time.Sleep(50 * time.Millisecond) // the holder's work, not a synchronisation
		mu.Unlock()
		close(done)
	}()
	<-held
	markWrite("b")
	mu.Lock()
	markWrite("e")
	mu.Unlock()
	<-done
}
