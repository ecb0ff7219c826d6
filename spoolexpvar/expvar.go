// Package spoolexpvar publishes a spool.Manager's Stats with the standard
// library's expvar, for programs without Prometheus: the Stats appear as
// JSON under /debug/vars.
//
//	spoolexpvar.Publish("spool_uploads", m)
package spoolexpvar

import (
	"expvar"

	"github.com/spoolkit/spool"
)

// Func returns an expvar.Var whose value is m.Stats(), read anew each time
// it is shown.
func Func(m *spool.Manager) expvar.Func {
	return func() any { return m.Stats() }
}

// Publish publishes m's Stats under name. Like expvar.Publish, it panics if
// name is already taken (a programming error, at start-up).
func Publish(name string, m *spool.Manager) {
	expvar.Publish(name, Func(m))
}
