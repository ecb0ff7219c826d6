package main

import (
	"cmp"
	"path/filepath"
	"slices"
	"strings"
)

// Mutex profiles (-profile DIR). Each child records every contention on a
// lock over its workload (runtime.SetMutexProfileFraction(mutexProfileRate))
// and writes DIR/NAME.mutex.pprof at its end (child.go); the parent reads
// it back (finishProfile) into Result.Mutex: the time goroutines waited
// for a sync.Mutex or sync.RWMutex another goroutine held, and of that,
// the time they waited for the store lock of one of spool's buffers
// (store.mu, lock.go), the one an eviction holds while it moves a
// victim's chunks to disk. A mutex profile charges each wait to the stack
// of the goroutine that released the lock: the unlock sites say which
// critical sections the waiting was for.

// mutexProfileRate is the fraction the children profile contentions at:
// 1, every one. Recording one costs a stack walk, at the unlock that ends
// a contention only, which the workloads here make a few thousand times a
// second at most.
const mutexProfileRate = 1

// MutexProfile is what a child's mutex profile says about lock contention
// over its workload. Runtime-internal locks (the scheduler's, the heap's),
// which the profile also records, are counted apart, in RuntimeDelay.
type MutexProfile struct {
	Contentions int64 `json:"contentions"` // on sync.Mutex and sync.RWMutex locks
	Delay       int64 `json:"delay_ns"`    // the time goroutines waited in them
	// StoreContentions and StoreDelay are the part of those for spool's
	// store lock: a sync.RWMutex released by a function of package spool
	// (store.mu is spool's only RWMutex but for LeastFrequentlyUsed's
	// admission lock, which is not counted).
	StoreContentions int64 `json:"store_contentions"`
	StoreDelay       int64 `json:"store_delay_ns"`
	RuntimeDelay     int64 `json:"runtime_delay_ns"` // runtime-internal locks
	// Sites are the unlock sites of the sync locks, the most delay first
	// (at most mutexSites of them).
	Sites []MutexSite `json:"sites,omitempty"`
}

// StoreShare is StoreDelay over Delay, or NaN.
func (p MutexProfile) StoreShare() float64 { return ratio(p.StoreDelay, p.Delay) }

// A MutexSite is where a sync lock that others waited for was released:
// the function that called Unlock (the first frame outside packages
// runtime and sync; for a deferred Unlock, the function that deferred
// it), and the kind of lock.
type MutexSite struct {
	Func        string `json:"func"`
	Lock        string `json:"lock"` // "sync.Mutex", "sync.RWMutex", or "store.mu" for spool's store lock
	Contentions int64  `json:"contentions"`
	Delay       int64  `json:"delay_ns"`
}

// mutexSites is the number of unlock sites a MutexProfile keeps.
const mutexSites = 5

// readMutexProfile reads the mutex profile at path.
func readMutexProfile(path string) (MutexProfile, error) {
	p, err := readProfile(path)
	if err != nil {
		return MutexProfile{}, err
	}
	var mp MutexProfile
	sites := make(map[MutexSite]*MutexSite)
	p.each(func(stack []string, delay, count int64) {
		site, ok := mutexSite(stack)
		if !ok {
			mp.RuntimeDelay += delay
			return
		}
		mp.Contentions += count
		mp.Delay += delay
		if site.Lock == "store.mu" {
			mp.StoreContentions += count
			mp.StoreDelay += delay
		}
		s := sites[site]
		if s == nil {
			s = &MutexSite{Func: site.Func, Lock: site.Lock}
			sites[site] = s
		}
		s.Contentions += count
		s.Delay += delay
	})
	for _, s := range sites {
		mp.Sites = append(mp.Sites, *s)
	}
	slices.SortFunc(mp.Sites, func(a, b MutexSite) int {
		return cmp.Or(cmp.Compare(b.Delay, a.Delay), strings.Compare(a.Func, b.Func), strings.Compare(a.Lock, b.Lock))
	})
	mp.Sites = mp.Sites[:min(len(mp.Sites), mutexSites)]
	return mp, nil
}

// mutexSite classifies the stack of a mutex profile's sample (innermost
// first): the unlock site of a sync lock (Contentions and Delay not
// filled in), or false for a runtime-internal lock, whose stack has no
// frame of package sync.
func mutexSite(stack []string) (MutexSite, bool) {
	var s MutexSite
	for _, f := range stack {
		switch {
		case strings.HasPrefix(f, "sync.(*RWMutex)."), strings.HasPrefix(f, "internal/sync.(*RWMutex)."):
			s.Lock = "sync.RWMutex"
		case strings.HasPrefix(f, "sync."), strings.HasPrefix(f, "internal/sync."):
			if s.Lock == "" {
				s.Lock = "sync.Mutex"
			}
		case strings.HasPrefix(f, "runtime."):
		default:
			if s.Lock == "" {
				return MutexSite{}, false
			}
			if i := strings.LastIndex(f, ".deferwrap"); i > 0 {
				f = f[:i] // a deferred Unlock: the function that deferred it
			}
			s.Func = f
			if s.Lock == "sync.RWMutex" && strings.HasPrefix(f, spoolPkg) && !strings.HasPrefix(f, spoolPkg+"(*admission)") {
				s.Lock = "store.mu"
			}
			return s, true
		}
	}
	if s.Lock == "" {
		return MutexSite{}, false
	}
	s.Func = "?"
	return s, true
}

// finishProfile runs in the parent after each child that printed a
// Result, with -profile: it reads the child's mutex profile into
// res.Mutex, or records why it could not.
func finishProfile(cfg Config, job Job, res *Result) {
	if cfg.Profile == "" {
		return
	}
	mp, err := readMutexProfile(filepath.Join(cfg.Profile, jobFile(cfg.Scenario, job)+".mutex.pprof"))
	if err != nil {
		res.MutexError = err.Error()
		return
	}
	res.Mutex = &mp
}
