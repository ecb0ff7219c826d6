package spoolhttp

// Defaults for zero Limits fields.
const (
	// DefaultMaxParts is the limit on a form's parts when Limits.MaxParts
	// is 0, as in mime/multipart.
	DefaultMaxParts = 1000
	// DefaultMaxHeaderBytes is the limit on the bytes of all part headers
	// of a form when Limits.MaxHeaderBytes is 0.
	DefaultMaxHeaderBytes = 1 << 20
	// DefaultMaxTotalBytes is the limit on the bytes of all parts of a
	// form when Limits.MaxTotalBytes is 0, and on a request body when
	// the maxBytes of ReadBody or SpoolBody is 0: 32 GiB.
	DefaultMaxTotalBytes = 32 << 30
	// DefaultMaxValueBytes is the limit on the bytes of the values a form
	// keeps in memory when Limits.MaxValueBytes is 0, the 10 MiB that
	// mime/multipart reserves for them.
	DefaultMaxValueBytes = 10 << 20
	// DefaultMaxInlineValue is the largest value kept in memory, in
	// Form.Value, when Limits.MaxInlineValue is 0.
	DefaultMaxInlineValue = 64 << 10
)

// Limits bounds what ReadForm accepts, so that a hostile form can exhaust
// neither memory nor disk. A zero field means its default (the Default*
// constants); a negative field means no limit. Content bytes are counted
// after any Content-Transfer-Encoding is decoded.
type Limits struct {
	// MaxParts limits the number of parts of a form, those without a form
	// name (which ReadForm skips) included. Past it, ReadForm returns
	// ErrTooManyParts. Default 1000.
	MaxParts int

	// MaxHeaderBytes limits the bytes of the MIME headers of all parts
	// together, each header line counted as "Key: value\r\n". Past it,
	// ReadForm returns ErrHeaderTooLarge. Default 1 MiB.
	//
	// mime/multipart parses each part's header before ReadForm sees it,
	// and bounds it on its own (10 MiB and 10,000 lines per part), so a
	// single part's header may take that much memory for a moment
	// whatever this limit.
	MaxHeaderBytes int64

	// MaxTotalBytes limits the bytes of the contents of all parts
	// together: files, values, and skipped parts. Past it, ReadForm
	// returns ErrTooLarge. Default 32 GiB, which bounds little: the
	// Manager's Options.DiskBudget is what protects the disk from all
	// forms together. Set it to the largest upload your application
	// expects.
	MaxTotalBytes int64

	// MaxValueBytes limits the bytes of the values kept in memory, in
	// Form.Value, all together. Past it, ReadForm returns
	// ErrValuesTooLarge. Default 10 MiB. Values stored in Buffers (see
	// MaxInlineValue) do not count.
	MaxValueBytes int64

	// MaxInlineValue is the size of the largest value kept in memory as a
	// string in Form.Value; a larger value is stored in a Buffer, as a
	// FileHeader with an empty Filename in Form.File. Default 64 KiB. It
	// also bounds the memory ReadForm uses, outside the budget, to read a
	// value and tell whether it is longer (about twice MaxInlineValue). Negative means every value is kept in memory, within
	// MaxValueBytes, as mime/multipart does.
	MaxInlineValue int64

	// WaitForDisk makes the form's Buffers wait for disk budget (the
	// Manager's Options.DiskBudget) when it is spent, instead of failing
	// at once with spool.ErrDiskBudget (507): each is made with
	// Manager.NewBufferContext, and waits in line with the Manager's other
	// waiting writers while the context allows: the request's for
	// ParseMultipartForm, ReadFormContext's own, and none for ReadForm,
	// whose waits end only when room is freed or the Manager is closed.
	// A wait that ends with its context returns an error wrapping both
	// spool.ErrDiskBudget and the context's error. See NewBufferContext
	// for the refusals that end waits that would wait for each other for
	// ever. The context stays the Buffers' for their life, as
	// NewBufferContext says: a file detached (FileHeader.Detach) and
	// written to after the request is over no longer waits. Default
	// false: never wait.
	WaitForDisk bool
}

// withDefaults returns l with zero fields replaced by their defaults and
// negative ones by -1 (no limit).
func (l Limits) withDefaults() Limits {
	def := func(v *int64, d int64) {
		switch {
		case *v == 0:
			*v = d
		case *v < 0:
			*v = -1
		}
	}
	switch {
	case l.MaxParts == 0:
		l.MaxParts = DefaultMaxParts
	case l.MaxParts < 0:
		l.MaxParts = -1
	}
	def(&l.MaxHeaderBytes, DefaultMaxHeaderBytes)
	def(&l.MaxTotalBytes, DefaultMaxTotalBytes)
	def(&l.MaxValueBytes, DefaultMaxValueBytes)
	def(&l.MaxInlineValue, DefaultMaxInlineValue)
	return l
}
