package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
	"unicode/utf8"
)

// progress keeps one status line on a terminal, rewritten in place with
// the time the current step has taken. When off (stderr is not a
// terminal, or -json), every method does nothing.
type progress struct {
	w  io.Writer
	on bool

	mu      sync.Mutex
	text    string    // the current step; "" when cleared
	note    string    // shown after the times
	start   time.Time // of the current step
	begun   time.Time // of the whole run
	shown   bool      // a line is on the screen
	ticking bool
	stop    chan struct{}
	done    chan struct{}
}

// progressWidth keeps the line shorter than a common terminal, so that it
// never wraps (a wrapped line cannot be rewritten with \r).
const progressWidth = 100

func newProgress(w io.Writer, on bool) *progress {
	return &progress{w: w, on: on, begun: time.Now()}
}

// isTerminal reports whether w is a terminal (a character device other
// than /dev/null, with TERM not "dumb").
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("TERM") == "dumb" {
		return false
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	if null, err := os.Stat(os.DevNull); err == nil && os.SameFile(fi, null) {
		return false
	}
	return true
}

// set shows text as the current step, with its elapsed time and then
// note, until the next set or clear.
func (p *progress) set(text, note string) {
	if !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.text, p.note, p.start = text, note, time.Now()
	p.drawLocked()
	if !p.ticking {
		p.ticking = true
		p.stop, p.done = make(chan struct{}), make(chan struct{})
		go p.tick(p.stop, p.done)
	}
}

func (p *progress) tick(stop, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			p.mu.Lock()
			if p.text != "" {
				p.drawLocked()
			}
			p.mu.Unlock()
		}
	}
}

func (p *progress) drawLocked() {
	now := time.Now()
	line := fmt.Sprintf("bench: %s %.1f s (all: %.0f s)", p.text, now.Sub(p.start).Seconds(), now.Sub(p.begun).Seconds())
	if p.note != "" {
		line += " · " + p.note
	}
	if utf8.RuneCountInString(line) > progressWidth {
		r := []rune(line)
		line = string(r[:progressWidth-1]) + "…"
	}
	fmt.Fprintf(p.w, "\r\033[K%s", line)
	p.shown = true
}

// clear erases the line, so that other output can go to the terminal; the
// next set shows it again.
func (p *progress) clear() {
	if !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.text = ""
	if p.shown {
		fmt.Fprint(p.w, "\r\033[K")
		p.shown = false
	}
}

// close erases the line and stops the ticker.
func (p *progress) close() {
	if !p.on {
		return
	}
	p.clear()
	p.mu.Lock()
	ticking, stop, done := p.ticking, p.stop, p.done
	p.ticking = false
	p.mu.Unlock()
	if ticking {
		close(stop)
		<-done
	}
}
