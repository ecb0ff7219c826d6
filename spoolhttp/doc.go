// Package spoolhttp spools HTTP request bodies and multipart forms into
// spool Buffers, so that many concurrent uploads share one Manager's memory
// budget instead of each holding its own, and serves Buffers back with
// Range support.
//
// # Forms
//
// ReadForm and ParseMultipartForm replace (*multipart.Reader).ReadForm and
// (*http.Request).ParseMultipartForm. The standard library keeps up to
// maxMemory bytes of each form's files in memory, so 10,000 concurrent
// forms may hold 10,000 × maxMemory bytes; here every file part streams
// into a Buffer of the given Manager, and all forms of that Manager together
// hold at most its Options.MemoryBudget bytes of file data, the rest going
// to spill files.
//
//	form, err := spoolhttp.ParseMultipartForm(r, m, spoolhttp.Limits{})
//	if err != nil {
//		http.Error(w, http.StatusText(spoolhttp.StatusCode(err)), spoolhttp.StatusCode(err))
//		return
//	}
//	defer form.RemoveAll()
//
// Limits keeps the protections of the standard library (number of parts,
// header bytes, bytes of values held in memory) and adds one on the bytes
// of the whole form. Every limit has its own sentinel error, and StatusCode
// turns any error of this package, or of spool, into an HTTP status.
//
// When the Manager's Options.DiskBudget is spent, a form fails at once
// with 507 Insufficient Storage, unless Limits.WaitForDisk is set: its
// files then wait in line for disk freed by other forms while the
// request's context allows (ReadFormContext takes a context of its own).
//
// # Request bodies
//
// ReadBody spools a request body into a Buffer, within a size limit,
// rewound so that the handler can read it several times, seek in it, or
// pass it to archive/zip. SpoolBody does the same as middleware: it
// replaces r.Body with the Buffer and closes it when the handler returns.
// Their limit, like those of Limits, means the default when 0 and no limit
// when negative.
//
// # Serving
//
// ServeBuffer serves a Buffer with http.ServeContent: Range and
// conditional requests work. It reads the Buffer through a spool.Reader
// of its own, leaving the Buffer's offset alone, and sends the spilled
// blocks of a whole body or a single range over a plain HTTP/1 connection
// with sendfile(2), checked against their checksums first.
//
// # Concurrency and ownership
//
// The functions of this package hold no state of their own and are safe
// for concurrent use; any number of requests may share one Manager. Each
// Buffer has one owner, who closes it: the caller for ReadBody, the Form
// for ReadForm (until FileHeader.Detach hands a file over), the middleware
// for SpoolBody. A Buffer that is never closed still counts against the
// budget until the garbage collector finds it (spool.Stats.Leaked).
//
// # Errors and cleanup
//
// Every function of this package that fails closes the Buffers it created
// before returning, whatever the error (a limit, a malformed body, a full
// disk), so a failed request leaves nothing in the Manager.
package spoolhttp
