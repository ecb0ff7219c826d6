package spoolhttp_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/textproto"
	"reflect"
	"strings"
	"testing"

	"github.com/spoolkit/spool"
	"github.com/spoolkit/spool/spoolhttp"
)

// FuzzReadFormDifferential reads the same bytes with spoolhttp.ReadForm and
// with multipart.Reader.ReadForm: either both fail, or both return the
// same form (compareWithStd). Besides the body and the boundary, the
// input chooses the size of the reads of the body (chunk; 0: whole), since
// what mime/multipart does with a part it skips depends on how much of it
// its decoder had buffered, and ReadForm's MaxInlineValue (inline; 0: the
// default, negative: none), which splits values between Form.Value and
// Form.File.
func FuzzReadFormDifferential(f *testing.F) {
	for _, s := range readFormSeeds(f) {
		for _, chunk := range []uint8{0, 1, 7} {
			f.Add(s.body, s.boundary, chunk, int16(0))
		}
		f.Add(s.body, s.boundary, uint8(0), int16(-1))
		f.Add(s.body, s.boundary, uint8(3), int16(4))
	}
	f.Fuzz(func(t *testing.T, body []byte, boundary string, chunk uint8, inline int16) {
		compareWithStd(t, body, boundary, int(chunk), int64(inline))
	})
}

// readFormSeed is a body and its boundary.
type readFormSeed struct {
	body     []byte
	boundary string
}

// readFormSeeds returns realistic forms, well and badly formed, for the
// fuzz corpus.
func readFormSeeds(tb testing.TB) []readFormSeed {
	qp := textproto.MIMEHeader{"Content-Transfer-Encoding": {"quoted-printable"}}
	withCD := func(cd string, h textproto.MIMEHeader) textproto.MIMEHeader {
		h2 := textproto.MIMEHeader{"Content-Disposition": {cd}}
		for k, v := range h {
			h2[k] = v
		}
		return h2
	}
	var seeds []readFormSeed
	add := func(parts ...part) {
		// A short boundary rather than multipart.Writer's 60 random
		// characters, so that the fuzzer's mutations fall on the
		// structure more often than on boundaries.
		body, ct := formBody(tb, parts...)
		boundary := ct[strings.Index(ct, "boundary=")+len("boundary="):]
		seeds = append(seeds, readFormSeed{bytes.ReplaceAll(body, []byte(boundary), []byte("b")), "b"})
	}
	add(value("title", "hello"), file("doc", "a.txt", []byte("contents\r\nof a\r\n")), value("title", "again"))
	add(value("empty", ""), file("empty", "e.bin", nil), file("x", "x", []byte{0, 1, 2, 0xff}))
	// Parts without a form name: no Content-Disposition, name="", an
	// attachment, another disposition; some quoted-printable with a byte
	// the decoder rejects.
	add(value("a", "1"),
		part{raw: true, body: []byte("no disposition")},
		part{raw: true, header: withCD(`form-data; name=""`, nil), body: []byte("empty name")},
		part{raw: true, header: withCD(`attachment; filename="f.txt"`, nil), body: []byte("attachment")},
		part{raw: true, header: withCD(`attachment; name="n"`, nil), body: []byte("attachment with a name")},
		file("f", "f.txt", []byte("file")))
	add(value("a", "1"),
		part{raw: true, header: qp, body: []byte("bad \x01 byte")},
		part{raw: true, header: withCD(`form-data; name=""`, qp), body: []byte("=\r\nsoft break then \x7f")},
		part{raw: true, header: withCD(`attachment; filename="q.txt"`, qp), body: []byte("caf=C3=A9 =\rX")},
		file("f", "f.txt", []byte("file")))
	// Quoted-printable named parts, good and bad.
	add(part{name: "q", header: qp, body: []byte("caf=C3=A9=\r\n au lait")},
		part{name: "qf", filename: "q.txt", header: qp, body: []byte("line=20one\r\nline two=\r\n")})
	add(part{name: "bad", header: qp, body: []byte("x\x01y")})
	// A long unnamed quoted-printable part whose decoding fails early:
	// mime/multipart then reads the rest of it as lines between parts.
	add(value("a", "1"), part{raw: true, header: qp, body: []byte("\x01" + strings.Repeat("0123456789abcde\r\n", 600))}, value("b", "2"))
	add(value("long", strings.Repeat("v", 100)), value("long", "short"), file("f", "f", bytes.Repeat([]byte("0123456789"), 3000)))
	// Hand-written: LF line endings, a preamble and an epilogue, a cut
	// body, an empty form.
	seeds = append(seeds,
		readFormSeed{[]byte("preamble\r\n--b\r\nContent-Disposition: form-data; name=\"v\"\r\n\r\nval\r\n--b--\r\nepilogue"), "b"},
		readFormSeed{[]byte("--b\nContent-Disposition: form-data; name=\"v\"\n\nval\n--b\nContent-Disposition: form-data; name=\"f\"; filename=\"f\"\n\nfile\n--b--\n"), "b"},
		readFormSeed{[]byte("--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"f\"\r\n\r\ncut in the mid"), "b"},
		readFormSeed{[]byte("--b--\r\n"), "b"},
		readFormSeed{[]byte("--b\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\x01\r\n--b\r\nContent-Disposition: form-data; name=\"v\"\r\n\r\nv\r\n--b--"), "b"},
	)
	return seeds
}

// compareWithStd reads body, a multipart form with the given boundary,
// with spoolhttp.ReadForm, MaxInlineValue set to inline, and with
// multipart.Reader.ReadForm, both reading the body chunk bytes at a time
// (0: as much as they ask), and fails t unless both fail or both return
// the same form: the same values in the same order (spoolhttp's long
// values, in Form.File, counted as values), the same files with the same
// names, headers and contents. It also checks that spoolhttp leaves no
// buffer behind. It returns whether both succeeded. spoolhttp's Manager
// has a budget of 16 KiB, so that the files of a form past a few KiB
// spill to t.TempDir() and are read back from there.
//
// The other limits of spoolhttp are set so that they give the standard
// library's results or lie beyond any input: MaxParts is left at 1000, as
// in mime/multipart (both fail on the 1001st part); MaxHeaderBytes,
// MaxTotalBytes and MaxValueBytes, which mime/multipart lacks or applies
// to other sums, are off. mime/multipart's maxMemory is large enough that
// it keeps its files in memory. One intended divergence remains, excluded
// below: mime/multipart fails with ErrMessageTooLarge on its own bounds,
// which spoolhttp replaces by its Limits (the values and headers of a form
// within maxMemory + 10 MiB with an overhead per part, and at most 10,000
// header lines over all file parts).
func compareWithStd(t *testing.T, body []byte, boundary string, chunk int, inline int64) bool {
	t.Helper()
	const stdMaxMemory = 32 << 20
	m := newManager(t, spool.Options{MemoryBudget: 16 << 10, ChunkSize: 4 << 10})
	lim := spoolhttp.Limits{MaxHeaderBytes: -1, MaxTotalBytes: -1, MaxValueBytes: -1, MaxInlineValue: inline}
	sf, serr := spoolhttp.ReadForm(multipart.NewReader(chunkReader(body, chunk), boundary), m, lim)
	if sf != nil {
		defer func() {
			if err := sf.RemoveAll(); err != nil {
				t.Errorf("RemoveAll: %v", err)
			}
			checkClean(t, m)
		}()
	} else {
		checkClean(t, m)
	}
	stdf, stderr := multipart.NewReader(chunkReader(body, chunk), boundary).ReadForm(stdMaxMemory)
	if stdf != nil {
		defer stdf.RemoveAll()
	}

	if serr != nil && sf != nil {
		t.Fatalf("spoolhttp.ReadForm returned a form and %v", serr)
	}
	if serr != nil && !errors.Is(serr, spoolhttp.ErrMalformed) && !errors.Is(serr, spoolhttp.ErrTooManyParts) &&
		!errors.Is(serr, spoolhttp.ErrHeaderTooLarge) {
		// Not an error of the form: the Manager's, or a limit that is
		// off.
		t.Fatalf("spoolhttp.ReadForm: %v", serr)
	}
	switch {
	case serr != nil && stderr != nil:
		return false
	case serr == nil && errors.Is(stderr, multipart.ErrMessageTooLarge):
		return false // mime/multipart's own bounds; see above
	case serr != nil || stderr != nil:
		t.Fatalf("spoolhttp.ReadForm: %v; multipart.Reader.ReadForm: %v", serr, stderr)
	}

	if sf.Value == nil || sf.File == nil {
		t.Fatalf("form with nil maps: %+v", sf)
	}
	want, err := canonStd(stdf, inline)
	if err != nil {
		t.Fatal(err)
	}
	got, err := canonSpool(sf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("forms differ:\nspoolhttp:      %+v\nmime/multipart: %+v", got, want)
	}
	return true
}

// canonForm is a form reduced to what both ReadForms must agree on, each
// map holding only the fields that have entries in it.
type canonForm struct {
	Values map[string][]string // values in Form.Value
	Long   map[string][]string // values longer than MaxInlineValue
	Files  map[string][]canonFile
}

type canonFile struct {
	Filename string
	Header   textproto.MIMEHeader
	Content  string
}

func newCanonForm() canonForm {
	return canonForm{map[string][]string{}, map[string][]string{}, map[string][]canonFile{}}
}

// canonStd reduces a form of mime/multipart, whose values spoolhttp keeps
// in Form.Value up to inline bytes (its MaxInlineValue).
func canonStd(f *multipart.Form, inline int64) (canonForm, error) {
	switch {
	case inline == 0:
		inline = spoolhttp.DefaultMaxInlineValue
	case inline < 0:
		inline = -1
	}
	c := newCanonForm()
	for name, vs := range f.Value {
		for _, v := range vs {
			if inline >= 0 && int64(len(v)) > inline {
				c.Long[name] = append(c.Long[name], v)
			} else {
				c.Values[name] = append(c.Values[name], v)
			}
		}
	}
	for name, fhs := range f.File {
		for _, fh := range fhs {
			b, err := readStdFile(fh)
			if err != nil {
				return c, fmt.Errorf("mime/multipart file %q: %w", fh.Filename, err)
			}
			c.Files[name] = append(c.Files[name], canonFile{fh.Filename, fh.Header, string(b)})
		}
	}
	return c, nil
}

func readStdFile(fh *multipart.FileHeader) ([]byte, error) {
	r, err := fh.Open()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err == nil && int64(len(b)) != fh.Size {
		err = fmt.Errorf("%d bytes, Size %d", len(b), fh.Size)
	}
	return b, err
}

// canonSpool reduces a form of spoolhttp, whose files without a Filename
// are long values.
func canonSpool(f *spoolhttp.Form) (canonForm, error) {
	c := newCanonForm()
	for name, vs := range f.Value {
		if len(vs) == 0 {
			return c, fmt.Errorf("spoolhttp: field %q with no value", name)
		}
		c.Values[name] = append(c.Values[name], vs...)
	}
	for name, fhs := range f.File {
		if len(fhs) == 0 {
			return c, fmt.Errorf("spoolhttp: field %q with no file", name)
		}
		for _, fh := range fhs {
			r, err := fh.Open()
			if err != nil {
				return c, fmt.Errorf("spoolhttp file %q: %w", fh.Filename, err)
			}
			b, err := io.ReadAll(r)
			if err != nil {
				return c, fmt.Errorf("spoolhttp file %q: %w", fh.Filename, err)
			}
			if int64(len(b)) != fh.Size || fh.Size != fh.Buffer().Size() {
				return c, fmt.Errorf("spoolhttp file %q: %d bytes, Size %d, Buffer %d", fh.Filename, len(b), fh.Size, fh.Buffer().Size())
			}
			if fh.Filename == "" {
				c.Long[name] = append(c.Long[name], string(b))
			} else {
				c.Files[name] = append(c.Files[name], canonFile{fh.Filename, fh.Header, string(b)})
			}
		}
	}
	return c, nil
}

// chunkReader returns a reader of b that returns at most n bytes per Read,
// or all it is asked for if n is 0.
func chunkReader(b []byte, n int) io.Reader {
	if n <= 0 {
		return bytes.NewReader(b)
	}
	return &chunked{b, n}
}

type chunked struct {
	b []byte
	n int
}

func (c *chunked) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.n)], c.b)
	c.b = c.b[n:]
	return n, nil
}
