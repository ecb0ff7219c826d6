package spoolhttp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"

	"github.com/spoolkit/spool"
)

// Form is a parsed multipart form, like multipart.Form, whose file parts
// are stored in spool Buffers. Value and File are keyed by form field name.
//
// Value holds the values of the parts without a filename that are at most
// Limits.MaxInlineValue bytes long. A longer value is stored in a Buffer
// and appears in File, under its field name, as a FileHeader with an empty
// Filename; so a handler that accepts long text fields looks for them in
// both maps. Within each map, the entries of a field keep the order of
// the parts.
//
// The Form owns its Buffers: RemoveAll closes them (except those taken
// with FileHeader.Detach). Call it when done with the form; until then the
// files hold memory of the Manager's budget or spill files. A Form is not
// safe for concurrent modification, and RemoveAll must not run while its
// files are being read; reading the files from several goroutines at once
// is safe (see FileHeader.Open).
type Form struct {
	Value map[string][]string
	File  map[string][]*FileHeader
}

// A FileHeader describes a file part of a form, or a value too long to be
// kept in memory (see Form), stored in a Buffer of the form's Manager.
type FileHeader struct {
	// Filename is the part's file name, as returned by
	// multipart.Part.FileName: without directories. It is empty for a
	// long value.
	Filename string
	// Header is the part's MIME header.
	Header textproto.MIMEHeader
	// Size is the length of the part's contents in bytes, after any
	// Content-Transfer-Encoding is decoded.
	Size int64

	buf      *spool.Buffer
	detached bool // Detach was called: RemoveAll leaves buf alone
	removed  bool // RemoveAll closed buf
}

// Open returns a reader of the file's contents, with its own offset, that
// implements multipart.File (io.Reader, io.ReaderAt, io.Seeker and
// io.Closer) over the Buffer. Several readers may be opened and used at
// once, from different goroutines. Closing a reader does nothing: the
// Buffer belongs to the Form, and the reader fails with spool.ErrClosed
// once RemoveAll has closed it. Open returns an error wrapping
// spool.ErrClosed after RemoveAll.
func (fh *FileHeader) Open() (multipart.File, error) {
	if fh.buf == nil || fh.removed {
		return nil, fmt.Errorf("spoolhttp: open %q: %w", fh.Filename, spool.ErrClosed)
	}
	return sectionFile{io.NewSectionReader(fh.buf, 0, fh.Size)}, nil
}

// sectionFile is the multipart.File that Open returns.
type sectionFile struct{ *io.SectionReader }

// Close does nothing: the Form owns the Buffer.
func (sectionFile) Close() error { return nil }

// Buffer returns the Buffer that holds the file. ReadForm leaves it
// rewound to its start; Buffer does not rewind it again, so seek to 0 to
// read it a second time. It belongs to the Form: do not Close it, and mind
// that its offset is shared by every user of the Buffer (Open gives each
// reader its own, at the start). Use Detach
// to keep the Buffer after the Form is removed.
func (fh *FileHeader) Buffer() *spool.Buffer { return fh.buf }

// Detach returns the Buffer that holds the file and hands it over to the
// caller, who must Close it: RemoveAll will leave it open. A server that
// keeps an uploaded file beyond the request detaches it, and so needs no
// copy. A Buffer of a form read with Limits.WaitForDisk keeps the
// request's context for its life: once the request is over, a write to it
// that needs disk budget fails at once, as with Manager.NewBufferContext.
func (fh *FileHeader) Detach() *spool.Buffer {
	fh.detached = true
	return fh.buf
}

// RemoveAll closes the Buffers of all files of the form, giving their
// memory back to the Manager and removing their spill files, except those
// detached. It returns the errors of closing them, joined; a Buffer closed
// already is not an error. Calling it again does nothing.
func (f *Form) RemoveAll() error {
	var errs []error
	for _, fhs := range f.File {
		for _, fh := range fhs {
			if fh.buf == nil || fh.detached || fh.removed {
				continue
			}
			fh.removed = true
			if err := fh.buf.Close(); err != nil && !errors.Is(err, spool.ErrClosed) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// ReadForm reads a whole multipart form from r, as r.ReadForm does, but
// stores its files in Buffers of m, within lim (a zero Limits gives the
// defaults). Parts without a form name are read and dropped, as
// mime/multipart does: their bytes count towards the limits, but an error
// decoding them (a bad quoted-printable body) is not an error of the form.
//
// The files are read straight into Buffers, so the memory a form takes
// outside m's budget is bounded by its values (lim.MaxValueBytes), its
// headers (lim.MaxHeaderBytes) and a value being read (lim.MaxInlineValue),
// however large its files; many forms read at once share m's budget.
//
// On error ReadForm closes every Buffer it created and returns a nil Form
// and an error for which StatusCode gives a status: ErrTooManyParts,
// ErrHeaderTooLarge, ErrTooLarge or ErrValuesTooLarge for a limit,
// ErrMalformed for a body mime/multipart cannot parse or that could not be
// read, or the error of m (spool.ErrDiskBudget, a full disk, ...),
// wrapped. It is safe to call ReadForm for different readers at once,
// with the same Manager.
func ReadForm(r *multipart.Reader, m *spool.Manager, lim Limits) (*Form, error) {
	return ReadFormContext(context.Background(), r, m, lim)
}

// ReadFormContext is ReadForm whose Buffers, with lim.WaitForDisk, wait
// for disk budget while ctx allows. Without lim.WaitForDisk, ctx is not
// used. A nil ctx is an error wrapping spool.ErrInvalid.
func ReadFormContext(ctx context.Context, r *multipart.Reader, m *spool.Manager, lim Limits) (*Form, error) {
	if ctx == nil {
		return nil, fmt.Errorf("%w: spoolhttp.ReadFormContext with a nil Context", spool.ErrInvalid)
	}
	f := &Form{Value: make(map[string][]string), File: make(map[string][]*FileHeader)}
	if err := f.read(ctx, r, m, lim.withDefaults()); err != nil {
		f.RemoveAll()
		return nil, err
	}
	return f, nil
}

// read reads the parts of r into f.
func (f *Form) read(ctx context.Context, r *multipart.Reader, m *spool.Manager, lim Limits) error {
	var (
		parts                      int
		headerBytes, total, values int64
	)
	newBuffer := m.NewBuffer
	if lim.WaitForDisk {
		newBuffer = func() (*spool.Buffer, error) { return m.NewBufferContext(ctx) }
	}
	for {
		p, err := r.NextPart()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return requestError(err)
		}
		if parts++; lim.MaxParts >= 0 && parts > lim.MaxParts {
			return fmt.Errorf("%w: more than %d", ErrTooManyParts, lim.MaxParts)
		}
		if headerBytes += headerSize(p.Header); lim.MaxHeaderBytes >= 0 && headerBytes > lim.MaxHeaderBytes {
			return fmt.Errorf("%w: more than %d bytes", ErrHeaderTooLarge, lim.MaxHeaderBytes)
		}
		src := &limitReader{r: p, n: &total, max: lim.MaxTotalBytes, exceeds: "form contents exceed"}
		name, filename := p.FormName(), p.FileName()
		if name == "" {
			if err := skipPart(src); err != nil {
				return err
			}
			continue
		}
		if filename != "" {
			if err := f.addFile(newBuffer, name, filename, p.Header, nil, src); err != nil {
				return err
			}
			continue
		}

		// A value: read up to readMax+1 bytes in memory, to tell whether
		// it fits.
		readMax := lim.MaxInlineValue
		if readMax < 0 && lim.MaxValueBytes >= 0 {
			readMax = lim.MaxValueBytes - values
		}
		var b bytes.Buffer
		var head io.Reader = src
		if readMax >= 0 {
			head = io.LimitReader(src, min(readMax, math.MaxInt64-1)+1)
		}
		if _, err := b.ReadFrom(head); err != nil {
			return copyError(err, fmt.Sprintf("value %q", name))
		}
		if readMax >= 0 && int64(b.Len()) > readMax {
			if lim.MaxInlineValue < 0 {
				// readMax was what MaxValueBytes left.
				return fmt.Errorf("%w: more than %d bytes", ErrValuesTooLarge, lim.MaxValueBytes)
			}
			if err := f.addFile(newBuffer, name, "", p.Header, b.Bytes(), src); err != nil {
				return err
			}
			continue
		}
		if values += int64(b.Len()); lim.MaxValueBytes >= 0 && values > lim.MaxValueBytes {
			return fmt.Errorf("%w: more than %d bytes", ErrValuesTooLarge, lim.MaxValueBytes)
		}
		f.Value[name] = append(f.Value[name], b.String())
	}
}

// skipPart drains src, a part without a form name, which the form ignores.
// mime/multipart's ReadForm skips such a part by leaving it to the next
// NextPart, whose Part.Close drains it through the part's decoder and
// ignores any error; so does skipPart, or a form that mime/multipart
// accepts (an ignored quoted-printable part holding a byte the decoder
// rejects) would be ErrMalformed here.
//
// The drain reads through src, so that the decoded bytes of ignored parts
// count towards MaxTotalBytes like those of any part, and skipPart returns
// the limit's error. It returns nil for any other error, the decoder's or
// one of reading the request. The latter is not lost: the multipart.Reader
// keeps it (its source's errors are sticky, and the part and the decoder
// return theirs again), so the next NextPart fails with it, as in
// mime/multipart. A decoding error stops the decoder where it is and
// leaves the rest of the part unread; NextPart then reads that rest as
// what follows a part, as in mime/multipart: it fails at the first line
// that is neither blank nor a boundary, and a boundary starts a part that
// counts as any. So that rest costs at most a line of the
// multipart.Reader's buffer (4 KiB), not the length of the part.
func skipPart(src *limitReader) error {
	_, err := io.Copy(io.Discard, src)
	var re *readError
	if err != nil && !errors.As(err, &re) {
		return err
	}
	return nil
}

// partName names a part in errors: its file name, or, for a value, its
// form name. It is called only on an error, so that a form that is read
// whole formats nothing.
func partName(name, filename string) string {
	if filename == "" {
		return fmt.Sprintf("value %q", name)
	}
	return fmt.Sprintf("file %q", filename)
}

// addFile stores a part in a Buffer from newBuffer, head and then the
// rest of src, and adds it to f.File, rewound.
func (f *Form) addFile(newBuffer func() (*spool.Buffer, error), name, filename string, h textproto.MIMEHeader, head []byte, src io.Reader) error {
	buf, err := newBuffer()
	if err != nil {
		return fmt.Errorf("spoolhttp: spooling %s: %w", partName(name, filename), err)
	}
	// In f at once, so that RemoveAll closes it whatever happens next.
	fh := &FileHeader{Filename: filename, Header: h, buf: buf}
	f.File[name] = append(f.File[name], fh)
	if _, err := buf.Write(head); err != nil {
		return fmt.Errorf("spoolhttp: spooling %s: %w", partName(name, filename), err)
	}
	if _, err := buf.ReadFrom(fullReader{src}); err != nil {
		return copyError(err, partName(name, filename))
	}
	if _, err := buf.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("spoolhttp: spooling %s: %w", partName(name, filename), err)
	}
	fh.Size = buf.Size()
	return nil
}

// headerSize returns the bytes of h as sent: "Key: value\r\n" per value.
func headerSize(h textproto.MIMEHeader) int64 {
	var n int64
	for k, vs := range h {
		for _, v := range vs {
			n += int64(len(k) + len(": ") + len(v) + len("\r\n"))
		}
	}
	return n
}

// ParseMultipartForm reads the multipart/form-data body of req as
// req.ParseMultipartForm does, but into Buffers of m within lim: with
// ReadFormContext and req's context, which bounds the waits for disk of
// lim.WaitForDisk. It reads req.Body, so it can be called once per
// request, and it does not set req.MultipartForm or req.Form. It returns
// ErrNotMultipart if req's Content-Type is not multipart/form-data,
// ErrMalformed if it has no valid boundary, and an error if
// req.ParseMultipartForm or req.MultipartReader has already read the
// body; otherwise see ReadForm. The caller must call RemoveAll on the
// Form.
func ParseMultipartForm(req *http.Request, m *spool.Manager, lim Limits) (*Form, error) {
	ct := req.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil && mt == "" {
		// Judge the type alone: a bad parameter makes a malformed form,
		// not another type.
		mt, _, _ = strings.Cut(ct, ";")
		mt = strings.ToLower(strings.TrimSpace(mt))
	}
	if mt != "multipart/form-data" {
		return nil, fmt.Errorf("%w: %q", ErrNotMultipart, ct)
	}
	if req.Body == nil {
		return nil, fmt.Errorf("%w: no body", ErrMalformed)
	}
	if req.MultipartForm != nil {
		// req.ParseMultipartForm or req.MultipartReader has had the body.
		return nil, errBodyTaken
	}
	// multipart.NewReader rather than req.MultipartReader, which would
	// set req.MultipartForm to net/http's marker and so make a later
	// req.FormValue or req.ParseMultipartForm fail.
	boundary := params["boundary"]
	if err != nil || boundary == "" {
		return nil, fmt.Errorf("%w: Content-Type %q: %w", ErrMalformed, ct, http.ErrMissingBoundary)
	}
	return ReadFormContext(req.Context(), multipart.NewReader(req.Body, boundary), m, lim)
}

// errBodyTaken is returned by ParseMultipartForm for a request whose body
// net/http's own multipart parsing has already read.
var errBodyTaken = errors.New("spoolhttp: multipart body already read by req.ParseMultipartForm or req.MultipartReader")
