package spoolhttp_test

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"
	"testing"

	"github.com/spoolkit/spool"
	"github.com/spoolkit/spool/spoolhttp"
)

func TestReadFormFilesAndValues(t *testing.T) {
	m := newManager(t, spool.Options{})
	r := rand.New(rand.NewPCG(1, 2))
	a, b, c := randBytes(r, 1000), randBytes(r, 200<<10), []byte{}
	long := strings.Repeat("x", spoolhttp.DefaultMaxInlineValue+1)
	inline := strings.Repeat("y", spoolhttp.DefaultMaxInlineValue)
	body, ct := formBody(t,
		value("title", "hello"),
		file("docs", "a.bin", a),
		value("tag", "one"),
		file("docs", "../../etc/b.bin", b), // directories are dropped
		file("empty", "c.txt", c),
		value("tag", "two"),
		part{raw: true, header: textproto.MIMEHeader{"Content-Type": {"text/plain"}}, body: []byte("no name: skipped")},
		value("long", long),
		value("inline", inline),
	)
	f, err := readForm(body, ct, m, spoolhttp.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Value["title"]; len(got) != 1 || got[0] != "hello" {
		t.Errorf("title = %q", got)
	}
	if got := f.Value["tag"]; len(got) != 2 || got[0] != "one" || got[1] != "two" {
		t.Errorf("tag = %q", got)
	}
	if got := f.Value["inline"]; len(got) != 1 || got[0] != inline {
		t.Errorf("a value of MaxInlineValue bytes is not in Value")
	}
	if len(f.Value) != 3 {
		t.Errorf("Value has %d fields, want 3: %v", len(f.Value), f.Value)
	}
	docs := f.File["docs"]
	if len(docs) != 2 || docs[0].Filename != "a.bin" || docs[1].Filename != "b.bin" {
		t.Fatalf("docs = %+v", docs)
	}
	for i, want := range [][]byte{a, b} {
		fh := docs[i]
		if fh.Size != int64(len(want)) || !bytes.Equal(contents(t, fh), want) {
			t.Errorf("%s: size %d, contents differ", fh.Filename, fh.Size)
		}
		if ct := fh.Header.Get("Content-Type"); ct != "application/octet-stream" {
			t.Errorf("%s: Content-Type %q", fh.Filename, ct)
		}
		// Buffer is rewound.
		got, err := io.ReadAll(fh.Buffer())
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: reading Buffer: %v", fh.Filename, err)
		}
	}
	if e := f.File["empty"]; len(e) != 1 || e[0].Size != 0 || len(contents(t, e[0])) != 0 {
		t.Errorf("empty = %+v", e)
	}
	// The long value is a FileHeader without a Filename.
	if l := f.File["long"]; len(l) != 1 || l[0].Filename != "" || string(contents(t, l[0])) != long {
		t.Errorf("long value: %+v", l)
	}
	if _, ok := f.Value["long"]; ok {
		t.Error("long value also in Value")
	}

	// Two readers from Open have their own offsets, and implement ReadAt
	// and Seek.
	r1, _ := docs[1].Open()
	r2, _ := docs[1].Open()
	p1, p2 := make([]byte, 10), make([]byte, 10)
	r1.Seek(1000, io.SeekStart)
	io.ReadFull(r1, p1)
	io.ReadFull(r2, p2)
	if !bytes.Equal(p1, b[1000:1010]) || !bytes.Equal(p2, b[:10]) {
		t.Error("readers share an offset")
	}
	if n, err := r2.ReadAt(p2, int64(len(b))-5); n != 5 || err != io.EOF {
		t.Errorf("ReadAt at the end: %d, %v", n, err)
	}

	kept := docs[0].Detach()
	if err := f.RemoveAll(); err != nil {
		t.Fatal(err)
	}
	if s := m.Stats(); s.Buffers != 1 {
		t.Errorf("%d buffers after RemoveAll, want the detached one", s.Buffers)
	}
	kept.Seek(0, io.SeekStart)
	if got, _ := io.ReadAll(kept); !bytes.Equal(got, a) {
		t.Error("detached buffer lost its contents")
	}
	if _, err := docs[1].Open(); !errors.Is(err, spool.ErrClosed) {
		t.Errorf("Open after RemoveAll: %v", err)
	}
	if _, err := r1.Read(p1); !errors.Is(err, spool.ErrClosed) {
		t.Errorf("Read after RemoveAll: %v", err)
	}
	if err := f.RemoveAll(); err != nil {
		t.Errorf("second RemoveAll: %v", err)
	}
	kept.Close()
	checkClean(t, m)
}

// TestReadFormSpills: under a tiny budget, the files of a form spill to
// disk and read back intact, and memory stays within the budget.
func TestReadFormSpills(t *testing.T) {
	m := tinyManager(t)
	r := rand.New(rand.NewPCG(3, 4))
	var parts []part
	var want [][]byte
	for i := range 5 {
		b := randBytes(r, 100<<10+i)
		want = append(want, b)
		parts = append(parts, file("f", "f.bin", b))
	}
	body, ct := formBody(t, parts...)
	f, err := readForm(body, ct, m, spoolhttp.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.RemoveAll()
	s := m.Stats()
	if s.MemoryInUse > s.MemoryBudget || s.BuffersOnDisk != 5 {
		t.Errorf("memory %d of %d, %d buffers on disk", s.MemoryInUse, s.MemoryBudget, s.BuffersOnDisk)
	}
	for i, fh := range f.File["f"] {
		if !fh.Buffer().OnDisk() {
			t.Errorf("file %d in memory", i)
		}
		if !bytes.Equal(contents(t, fh), want[i]) {
			t.Errorf("file %d differs", i)
		}
	}
	f.RemoveAll()
	checkClean(t, m)
}

// TestReadFormLimits: each limit gives its error and 413, and leaves no
// buffer behind; a form exactly at a limit passes.
func TestReadFormLimits(t *testing.T) {
	big := make([]byte, 3000)
	longHeader := textproto.MIMEHeader{"X-Padding": {strings.Repeat("h", 200)}}
	tests := []struct {
		name  string
		lim   spoolhttp.Limits
		parts []part
		want  error // nil: must pass
	}{
		{"parts", spoolhttp.Limits{MaxParts: 2},
			[]part{file("a", "a", big), value("b", "x"), value("c", "y")}, spoolhttp.ErrTooManyParts},
		{"parts at limit", spoolhttp.Limits{MaxParts: 3},
			[]part{file("a", "a", big), value("b", "x"), value("c", "y")}, nil},
		{"nameless parts count", spoolhttp.Limits{MaxParts: 1},
			[]part{{raw: true, body: []byte("x")}, file("a", "a", big)}, spoolhttp.ErrTooManyParts},
		{"default parts", spoolhttp.Limits{},
			manyParts(spoolhttp.DefaultMaxParts + 1), spoolhttp.ErrTooManyParts},
		{"no part limit", spoolhttp.Limits{MaxParts: -1},
			manyParts(spoolhttp.DefaultMaxParts + 1), nil},
		{"headers", spoolhttp.Limits{MaxHeaderBytes: 500},
			[]part{file("a", "a", big), {name: "b", header: longHeader}, {name: "c", header: longHeader}}, spoolhttp.ErrHeaderTooLarge},
		{"total", spoolhttp.Limits{MaxTotalBytes: 5000},
			[]part{file("a", "a", big), file("b", "b", big)}, spoolhttp.ErrTooLarge},
		{"total at limit", spoolhttp.Limits{MaxTotalBytes: 6001},
			[]part{file("a", "a", big), value("v", "x"), file("b", "b", big)}, nil},
		{"total counts skipped parts", spoolhttp.Limits{MaxTotalBytes: 5000},
			[]part{file("a", "a", big), {raw: true, body: big}}, spoolhttp.ErrTooLarge},
		{"total counts skipped parts up to a decoding error", spoolhttp.Limits{MaxTotalBytes: 5000},
			[]part{file("a", "a", big), {raw: true, header: textproto.MIMEHeader{"Content-Transfer-Encoding": {"quoted-printable"}},
				body: append(bytes.Repeat([]byte("v"), 2500), 1)}}, spoolhttp.ErrTooLarge},
		{"skipped part with a decoding error at limit", spoolhttp.Limits{MaxTotalBytes: 5500},
			[]part{file("a", "a", big), {raw: true, header: textproto.MIMEHeader{"Content-Transfer-Encoding": {"quoted-printable"}},
				body: append(bytes.Repeat([]byte("v"), 2500), 1)}}, nil},
		{"total counts values", spoolhttp.Limits{MaxTotalBytes: 5000},
			[]part{file("a", "a", big), value("v", string(big))}, spoolhttp.ErrTooLarge},
		{"values", spoolhttp.Limits{MaxValueBytes: 1000},
			[]part{file("a", "a", big), value("a", strings.Repeat("v", 400)), value("b", strings.Repeat("v", 400)), value("c", strings.Repeat("v", 400))}, spoolhttp.ErrValuesTooLarge},
		{"values at limit", spoolhttp.Limits{MaxValueBytes: 1000},
			[]part{value("a", strings.Repeat("v", 600)), value("b", strings.Repeat("v", 400))}, nil},
		{"long values do not count", spoolhttp.Limits{MaxValueBytes: 1000, MaxInlineValue: 100},
			[]part{value("a", strings.Repeat("v", 600)), value("b", strings.Repeat("v", 600))}, nil},
		{"values, all inline", spoolhttp.Limits{MaxValueBytes: 1000, MaxInlineValue: -1},
			[]part{file("a", "a", big), value("a", strings.Repeat("v", 1001))}, spoolhttp.ErrValuesTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newManager(t, spool.Options{MemoryBudget: 1 << 20, ChunkSize: 4 << 10})
			body, ct := formBody(t, tt.parts...)
			f, err := readForm(body, ct, m, tt.lim)
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				f.RemoveAll()
			} else {
				if !errors.Is(err, tt.want) || f != nil {
					t.Fatalf("got %v, %v; want %v", f, err, tt.want)
				}
				if code := spoolhttp.StatusCode(err); code != http.StatusRequestEntityTooLarge {
					t.Errorf("StatusCode(%v) = %d", err, code)
				}
			}
			checkClean(t, m)
		})
	}
}

func manyParts(n int) []part {
	ps := make([]part, n)
	for i := range ps {
		ps[i] = value("v", "x")
	}
	return ps
}

// TestReadFormHugeHeader: a part header past mime/multipart's own limit
// gives ErrHeaderTooLarge too.
func TestReadFormHugeHeader(t *testing.T) {
	m := newManager(t, spool.Options{})
	body, ct := formBody(t, file("a", "a", []byte("data")),
		part{name: "b", header: textproto.MIMEHeader{"X-Big": {strings.Repeat("h", 10<<20+1)}}})
	_, err := readForm(body, ct, m, spoolhttp.Limits{MaxHeaderBytes: -1})
	if !errors.Is(err, spoolhttp.ErrHeaderTooLarge) || !errors.Is(err, multipart.ErrMessageTooLarge) {
		t.Fatalf("got %v", err)
	}
	if code := spoolhttp.StatusCode(err); code != http.StatusRequestEntityTooLarge {
		t.Errorf("status %d", code)
	}
	checkClean(t, m)
}

// TestReadFormMalformed: bodies mime/multipart cannot parse give
// ErrMalformed and 400, and leave no buffer behind, even when cut short in
// the middle of a file.
func TestReadFormMalformed(t *testing.T) {
	good, ct := formBody(t, value("v", "x"), file("a", "a.bin", make([]byte, 50000)))
	boundary := ct[strings.Index(ct, "boundary=")+len("boundary="):]
	tests := []struct {
		name string
		body string
		ct   string
	}{
		{"empty", "", ct},
		{"garbage", "this is not a multipart body", ct},
		{"cut in a file", string(good[:len(good)/2]), ct},
		{"no final boundary", string(good[:len(good)-len(boundary)-8]), ct},
		{"cut in a header", string(good[:len(good)-len("--"+boundary+"--\r\n")]) + "--" + boundary + "\r\nContent-Disp", ct},
		{"other boundary", string(good), "multipart/form-data; boundary=other"},
		{"no boundary", string(good), "multipart/form-data"},
		{"bad parameter", string(good), `multipart/form-data; boundary="unterminated`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newManager(t, spool.Options{MemoryBudget: 16 << 10, ChunkSize: 4 << 10})
			f, err := readForm([]byte(tt.body), tt.ct, m, spoolhttp.Limits{})
			if !errors.Is(err, spoolhttp.ErrMalformed) || f != nil {
				t.Fatalf("got %v, %v; want ErrMalformed", f, err)
			}
			if code := spoolhttp.StatusCode(err); code != http.StatusBadRequest {
				t.Errorf("StatusCode(%v) = %d", err, code)
			}
			checkClean(t, m)
		})
	}
}

// TestReadFormMaxBytesReader: a body cut by http.MaxBytesReader gives
// ErrTooLarge (wrapping the *http.MaxBytesError) rather than ErrMalformed.
func TestReadFormMaxBytesReader(t *testing.T) {
	m := newManager(t, spool.Options{})
	body, ct := formBody(t, file("a", "a.bin", make([]byte, 50000)))
	req, _ := http.NewRequest("POST", "/", bytes.NewReader(body))
	req.Header.Set("Content-Type", ct)
	req.Body = http.MaxBytesReader(nil, req.Body, 20000)
	_, err := spoolhttp.ParseMultipartForm(req, m, spoolhttp.Limits{})
	var mbe *http.MaxBytesError
	if !errors.Is(err, spoolhttp.ErrTooLarge) || !errors.As(err, &mbe) {
		t.Fatalf("got %v", err)
	}
	if code := spoolhttp.StatusCode(err); code != http.StatusRequestEntityTooLarge {
		t.Errorf("status %d", code)
	}
	checkClean(t, m)
}

// TestReadFormSpoolErrors: errors of the Manager (disk budget, spill file
// limit, closed) are returned wrapped, with their status, and every
// buffer made so far is closed.
func TestReadFormSpoolErrors(t *testing.T) {
	big := make([]byte, 64<<10)
	tests := []struct {
		name   string
		opts   spool.Options
		closed bool
		want   error
		code   int
	}{
		{"disk budget", spool.Options{DiskBudget: 100 << 10}, false, spool.ErrDiskBudget, http.StatusInsufficientStorage},
		{"closed manager", spool.Options{}, true, spool.ErrClosed, http.StatusInternalServerError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.MemoryBudget, tt.opts.ChunkSize = 16<<10, 4<<10
			m := newManager(t, tt.opts)
			if tt.closed {
				m.Close()
			}
			body, ct := formBody(t, file("a", "a", big), file("b", "b", big), file("c", "c", big))
			f, err := readForm(body, ct, m, spoolhttp.Limits{})
			if !errors.Is(err, tt.want) || f != nil {
				t.Fatalf("got %v, %v; want %v", f, err, tt.want)
			}
			if code := spoolhttp.StatusCode(err); code != tt.code {
				t.Errorf("StatusCode(%v) = %d, want %d", err, code, tt.code)
			}
			checkClean(t, m)
			if s := m.Stats(); s.DiskInUse != 0 || s.BuffersOnDisk != 0 {
				t.Errorf("disk left in use: %+v", s)
			}
		})
	}
}

func TestParseMultipartFormContentType(t *testing.T) {
	m := newManager(t, spool.Options{})
	body, ct := formBody(t, value("v", "x"))
	tests := []struct {
		ct   string
		want error
		code int
	}{
		{"", spoolhttp.ErrNotMultipart, http.StatusUnsupportedMediaType},
		{"application/json", spoolhttp.ErrNotMultipart, http.StatusUnsupportedMediaType},
		{strings.Replace(ct, "form-data", "mixed", 1), spoolhttp.ErrNotMultipart, http.StatusUnsupportedMediaType},
		{"multipart/form-data", spoolhttp.ErrMalformed, http.StatusBadRequest},
		{strings.Replace(ct, "multipart/form-data", "Multipart/Form-Data", 1), nil, http.StatusOK},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest("POST", "/", bytes.NewReader(body))
		req.Header.Set("Content-Type", tt.ct)
		f, err := spoolhttp.ParseMultipartForm(req, m, spoolhttp.Limits{})
		if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
			t.Errorf("%q: got %v, want %v", tt.ct, err, tt.want)
		}
		if code := spoolhttp.StatusCode(err); code != tt.code {
			t.Errorf("%q: status %d, want %d", tt.ct, code, tt.code)
		}
		if f != nil {
			if f.Value["v"][0] != "x" {
				t.Errorf("%q: form %v", tt.ct, f.Value)
			}
			f.RemoveAll()
		}
	}
	req, _ := http.NewRequest("POST", "/", nil)
	req.Header.Set("Content-Type", ct)
	if _, err := spoolhttp.ParseMultipartForm(req, m, spoolhttp.Limits{}); !errors.Is(err, spoolhttp.ErrMalformed) {
		t.Errorf("nil body: %v", err)
	}
	checkClean(t, m)
}

// TestParseMultipartFormLeavesRequest: ParseMultipartForm does not set
// req.MultipartForm (net/http's MultipartReader would, to its marker), and
// it reports a body that net/http's own parsing has already read.
func TestParseMultipartFormLeavesRequest(t *testing.T) {
	m := newManager(t, spool.Options{})
	body, ct := formBody(t, value("v", "x"))
	req, _ := http.NewRequest("POST", "/", bytes.NewReader(body))
	req.Header.Set("Content-Type", ct)
	f, err := spoolhttp.ParseMultipartForm(req, m, spoolhttp.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	f.RemoveAll()
	if req.MultipartForm != nil {
		t.Errorf("req.MultipartForm = %+v after ParseMultipartForm, want nil", req.MultipartForm)
	}

	req, _ = http.NewRequest("POST", "/", bytes.NewReader(body))
	req.Header.Set("Content-Type", ct)
	if err := req.ParseMultipartForm(1 << 20); err != nil {
		t.Fatal(err)
	}
	defer req.MultipartForm.RemoveAll()
	if f, err := spoolhttp.ParseMultipartForm(req, m, spoolhttp.Limits{}); err == nil || f != nil {
		t.Errorf("after req.ParseMultipartForm: %v, %v; want an error", f, err)
	}
	checkClean(t, m)
}

// TestReadFormTransferEncoding: a quoted-printable part is stored decoded,
// and its decoded size is what counts.
func TestReadFormTransferEncoding(t *testing.T) {
	m := newManager(t, spool.Options{})
	qp := part{name: "q", filename: "q.txt", body: []byte("caf=C3=A9=\r\n au lait"),
		header: textproto.MIMEHeader{"Content-Transfer-Encoding": {"quoted-printable"}}}
	body, ct := formBody(t, qp)
	f, err := readForm(body, ct, m, spoolhttp.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.RemoveAll()
	fh := f.File["q"][0]
	if got := string(contents(t, fh)); got != "café au lait" || fh.Size != int64(len(got)) {
		t.Errorf("got %q, size %d", got, fh.Size)
	}
}

// TestReadFormSkipsUndecodablePart: parts without a form name (none, an
// empty one, an attachment) are skipped even when their quoted-printable
// body does not decode, as mime/multipart skips them, and the rest of the
// form is read as mime/multipart reads it.
func TestReadFormSkipsUndecodablePart(t *testing.T) {
	qp := textproto.MIMEHeader{"Content-Transfer-Encoding": {"quoted-printable"}}
	withCD := func(cd string) textproto.MIMEHeader {
		return textproto.MIMEHeader{"Content-Disposition": {cd}, "Content-Transfer-Encoding": {"quoted-printable"}}
	}
	data := bytes.Repeat([]byte("file data "), 1000)
	body, ct := formBody(t,
		value("title", "hello"),
		part{raw: true, header: qp, body: []byte("invalid \x01 byte")},
		part{raw: true, header: withCD(`form-data; name=""`), body: []byte("\x7f")},
		part{raw: true, header: withCD(`attachment; filename="a.txt"`), body: []byte("x=\rY")},
		file("doc", "a.txt", data),
		value("title", "again"),
	)
	m := newManager(t, spool.Options{})
	f, err := readForm(body, ct, m, spoolhttp.Limits{})
	if err != nil {
		t.Fatalf("ReadForm: %v", err)
	}
	if got := f.Value["title"]; len(got) != 2 || got[0] != "hello" || got[1] != "again" || len(f.Value) != 1 {
		t.Errorf("Value = %q", f.Value)
	}
	if docs := f.File["doc"]; len(docs) != 1 || !bytes.Equal(contents(t, docs[0]), data) || len(f.File) != 1 {
		t.Errorf("File = %+v", f.File)
	}
	f.RemoveAll()
	checkClean(t, m)

	boundary := ct[strings.Index(ct, "boundary=")+len("boundary="):]
	for _, chunk := range []int{0, 1, 100} {
		if !compareWithStd(t, body, boundary, chunk, 0) {
			t.Errorf("reading %d bytes at a time: both failed", chunk)
		}
	}
}

// TestReadFormUndecodablePartRest: when the decoding of a skipped part
// fails with much of the part left, mime/multipart takes that rest for
// what follows the part and rejects the form; so does ReadForm, with
// ErrMalformed, having read one line of the rest.
func TestReadFormUndecodablePartRest(t *testing.T) {
	qp := textproto.MIMEHeader{"Content-Transfer-Encoding": {"quoted-printable"}}
	body, ct := formBody(t, value("a", "1"),
		part{raw: true, header: qp, body: []byte("\x01" + strings.Repeat("0123456789abcdef\r\n", 1000))},
		value("b", "2"))
	m := newManager(t, spool.Options{})
	f, err := readForm(body, ct, m, spoolhttp.Limits{})
	if !errors.Is(err, spoolhttp.ErrMalformed) || f != nil {
		t.Fatalf("got %v, %v; want ErrMalformed", f, err)
	}
	checkClean(t, m)
	boundary := ct[strings.Index(ct, "boundary=")+len("boundary="):]
	if compareWithStd(t, body, boundary, 0, 0) {
		t.Error("mime/multipart accepts the form")
	}
}

// TestReadFormMaxBytesReaderSkippedPart: a body cut by http.MaxBytesReader
// in a part ReadForm skips still gives ErrTooLarge: skipping the part
// ignores its errors, but the next part's error is the body's.
func TestReadFormMaxBytesReaderSkippedPart(t *testing.T) {
	qp := textproto.MIMEHeader{"Content-Transfer-Encoding": {"quoted-printable"}}
	for _, h := range []textproto.MIMEHeader{nil, qp} {
		m := newManager(t, spool.Options{})
		body, ct := formBody(t, value("v", "x"),
			part{raw: true, header: h, body: bytes.Repeat([]byte("skipped\r\n"), 10000)},
			value("w", "y"))
		req, _ := http.NewRequest("POST", "/", bytes.NewReader(body))
		req.Header.Set("Content-Type", ct)
		req.Body = http.MaxBytesReader(nil, req.Body, 20000)
		_, err := spoolhttp.ParseMultipartForm(req, m, spoolhttp.Limits{})
		var mbe *http.MaxBytesError
		if !errors.Is(err, spoolhttp.ErrTooLarge) || !errors.As(err, &mbe) {
			t.Errorf("header %v: got %v", h, err)
		}
		checkClean(t, m)
	}
}
