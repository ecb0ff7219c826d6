// Package experiment holds switches for measuring alternatives to spool's
// choices side by side (go run ./bench -scenario cache). They are not part
// of the API and must not be used by programs.
package experiment

import "sync/atomic"

// RistrettoVictims, when set before a Manager is created, makes its
// LeastFrequentlyUsed policy choose victims by ristretto's view (buffers
// ristretto does not hold first, largest first) instead of by exact
// per-buffer counters.
var RistrettoVictims atomic.Bool
