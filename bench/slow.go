package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spoolkit/spool"
	"github.com/spoolkit/spool/spoolhttp"
)

// The slow scenario: many uploads in flight at once, each arriving a few
// KiB at a time, under a small budget, where what each upload in flight
// costs outside the budget adds up. Uploads of log-uniform size from
// cfg.SlowMinSize to cfg.SlowMaxSize (fixed seed) arrive cfg.SlowRead
// bytes at a time, each piece after a pause of cfg.SlowPause. All of them
// start together, once every one is set up, so that all are in flight at
// once. Each variant runs in its own child process, whose RSS is sampled:
//
//   - copy: io.Copy(buf, body) into a Buffer of one Manager with a
//     cfg.SlowBudget budget, from an in-process slow reader (slowBody);
//     then the Buffer is read back, checksummed against what the reader
//     produced, and closed.
//   - copy-discard: the same harness, with a sink that discards: it reads
//     the body through a slowSinkRead-byte buffer of its own and
//     checksums it.
//   - http: spoolhttp.ParseMultipartForm in the handler of a net/http
//     server on 127.0.0.1, whose clients run in a separate process
//     (slowClientMain) so that the child's RSS and descriptors are the
//     server's alone. Each client sends one multipart/form-data request on
//     a connection of its own: a file part, sent cfg.SlowRead bytes per
//     write with the pause before each, then a value part with the
//     file's CRC-32C. The handler reads the file back from its Buffer,
//     checks its size and checksum, and removes the form.
//   - http-discard: the same server and clients, with a handler that
//     discards the body (through a slowSinkRead-byte buffer) and checks
//     its length.
//   - http-multipart: the same again, with a handler that parses the form
//     with mime/multipart and discards each part (through the same small
//     buffer): not a target, but it tells what mime/multipart's own
//     reading costs per form in flight, of which spoolhttp cannot be
//     cheaper.
//
// The measure: the peak RSS of each spool variant above that of its
// discarding harness, as a ratio to the budget. The discarding sinks read
// through a buffer of their own of slowSinkRead bytes, not with
// io.Copy(io.Discard, body): io.Discard's ReadFrom holds an 8 KiB slice
// from a pool for the whole of each copy (in a standalone program, 10,000
// slow copies into io.Discard peaked 67 MiB above the same copies through
// a 128-byte buffer), which would count as harness and hide as much of
// spool's cost.
//
// A server process holds one descriptor per connection and spool one per
// spilled buffer, so 10,000 uploads in flight may need 20,000: the HTTP
// variants run as many uploads as the child's limit on open files allows
// (slowHTTPUploads), and the report says how many that was.

// slowSinkRead is the buffer of the discarding sinks.
const slowSinkRead = 128

// slowFDReserve is the descriptors an HTTP server child keeps for other
// uses than connections and spill files: stdio, the listener, the
// network poller, pipes to the client process, /proc files.
const slowFDReserve = 64

// slowReady starts the line the client process prints once every request
// head is out, followed by the number of connections.
const slowReady = "ready"

// slowBoundary is the multipart boundary of the HTTP variants' bodies.
const slowBoundary = "spoolbench-slow-upload-7f3a91c2"

// slowVariants are the variants of the slow scenario, in report order.
var slowVariants = []variant{
	{Name: "copy", Label: "io.Copy into spool"},
	{Name: "copy-discard", Label: "io.Copy harness, discarding sink"},
	{Name: "http", Label: "spoolhttp.ParseMultipartForm"},
	{Name: "http-discard", Label: "HTTP harness, discarding handler"},
	{Name: "http-multipart", Label: "HTTP harness, mime/multipart, parts discarded"},
}

func (cfg Config) validateSlow() error {
	switch {
	case cfg.SlowUploads <= 0 || cfg.SlowUploads > 1_000_000:
		return errors.New("-slow-uploads must be from 1 to 1,000,000")
	case cfg.SlowHTTPUploads < 0 || cfg.SlowHTTPUploads > 1_000_000:
		return errors.New("-slow-http-uploads must be from 0 to 1,000,000")
	case cfg.SlowMinSize <= 0 || cfg.SlowMaxSize < cfg.SlowMinSize:
		return errors.New("need 0 < -slow-min-size <= -slow-max-size")
	case cfg.SlowMaxSize > 1<<30:
		return errors.New("-slow-max-size must be at most 1 GiB")
	case cfg.SlowRead <= 0 || cfg.SlowRead > 1<<20:
		return errors.New("-slow-read must be from 1 byte to 1 MiB")
	case cfg.SlowPause < 0:
		return errors.New("-slow-pause must not be negative")
	case cfg.SlowBudget < spool.DefaultChunkSize:
		return fmt.Errorf("-slow-budget must be at least %s", formatSize(spool.DefaultChunkSize))
	case cfg.SlowClient != "" && cfg.SlowClientUploads <= 0:
		return errors.New("-slow-client needs -slow-client-uploads")
	}
	return nil
}

// slowWorkload is the uploads of a slow run: sizes and content seeds.
type slowWorkload struct {
	Sizes []int64
	Seeds []uint64
	Total int64
}

func newSlowWorkload(cfg Config, n int) slowWorkload {
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x510_0b0d1e5))
	lo, hi := math.Log(float64(cfg.SlowMinSize)), math.Log(float64(cfg.SlowMaxSize))
	w := slowWorkload{Sizes: make([]int64, n), Seeds: make([]uint64, n)}
	for i := range n {
		size := int64(math.Round(math.Exp(lo + rng.Float64()*(hi-lo))))
		w.Sizes[i] = min(max(size, cfg.SlowMinSize), cfg.SlowMaxSize)
		w.Seeds[i] = splitmix64(cfg.Seed ^ 0x510 ^ uint64(i+1)*0x9e3779b97f4a7c15)
		w.Total += w.Sizes[i]
	}
	return w
}

// slowHTTPUploads returns the uploads of the HTTP variants with soft as
// the limit on open files of the server process (0: unknown), and why, if
// they are fewer than cfg.SlowUploads.
func slowHTTPUploads(cfg Config, soft uint64) (int, string) {
	if cfg.SlowHTTPUploads > 0 {
		return cfg.SlowHTTPUploads, ""
	}
	n := cfg.SlowUploads
	if soft > 0 && uint64(2*n+slowFDReserve) > soft {
		n = max(1, int((soft-min(soft, slowFDReserve))/2))
		return n, fmt.Sprintf("the server process's limit on open files is %s, and each upload in flight takes a connection and, once spilled, a spill file there: %s uploads leave %d descriptors for the rest",
			commas(int64(soft)), commas(int64(n)), soft-uint64(2*n))
	}
	return n, ""
}

// SlowResult is what a child of the slow scenario measures.
type SlowResult struct {
	Uploads int    `json:"uploads"`           // in the workload
	Fewer   string `json:"fewer,omitempty"`   // why fewer than -slow-uploads
	Budget  int64  `json:"budget,omitempty"`  // enforced, for the spool variants
	FDSoft  uint64 `json:"fd_soft,omitempty"` // limits on open files, after raiseFDLimit
	FDHard  uint64 `json:"fd_hard,omitempty"`
	// MaxInFlight is the most uploads that were in flight at once: set up
	// (with their Buffer) and not finished, or for HTTP inside the
	// handler.
	MaxInFlight int64 `json:"max_in_flight"`
	// Stats of spool's Manager at the end of the uploads.
	Stats spool.Stats `json:"stats"`
	// The client process of the HTTP variants.
	Client *SlowClientResult `json:"client,omitempty"`
}

// slowBody is an upload's body, arriving slowly: each Read waits for the
// next piece of read bytes if it has none left of the last, then returns
// at most what is left of it. It generates the bytes from a seed and
// keeps their CRC-32C.
type slowBody struct {
	g     gen
	left  int64 // bytes not yet returned
	avail int   // bytes of the current piece not yet returned
	read  int
	pause time.Duration
	crc   uint32
}

func newSlowBody(cfg Config, size int64, seed uint64) *slowBody {
	return &slowBody{g: newGen(seed), left: size, read: cfg.SlowRead, pause: cfg.SlowPause}
}

func (b *slowBody) Read(p []byte) (int, error) {
	if b.left == 0 {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if b.avail == 0 {
		time.Sleep(b.pause)
		b.avail = int(min(int64(b.read), b.left))
	}
	n := min(len(p), b.avail)
	b.g.fill(p[:n])
	b.crc = crc32.Update(b.crc, castagnoli, p[:n])
	b.avail -= n
	b.left -= int64(n)
	return n, nil
}

// discardSink reads r to its end through a slowSinkRead-byte buffer and
// returns the bytes and their CRC-32C.
func discardSink(r io.Reader) (int64, uint32, error) {
	buf := make([]byte, slowSinkRead)
	var n int64
	var crc uint32
	for {
		k, err := r.Read(buf)
		n += int64(k)
		crc = crc32.Update(crc, castagnoli, buf[:k])
		if err == io.EOF {
			return n, crc, nil
		}
		if err != nil {
			return n, crc, err
		}
	}
}

// bufferCRC returns the size and CRC-32C of b's contents, read with
// WriteTo from the start (which moves them through a stage of the
// budget).
func bufferCRC(b *spool.Buffer) (int64, uint32, error) {
	if _, err := b.Seek(0, io.SeekStart); err != nil {
		return 0, 0, err
	}
	h := crc32.New(castagnoli)
	n, err := b.WriteTo(h)
	return n, h.Sum32(), err
}

// inFlight counts what is in flight, and the most at once.
type inFlight struct{ gauge }

func (f *inFlight) enter() { f.add(1) }
func (f *inFlight) leave() { f.add(-1) }

// runSlow is the run function of the slow scenario.
func runSlow(cfg Config, job Job) (Result, error) {
	switch job.Impl {
	case "copy", "copy-discard":
		return runSlowCopy(cfg, job)
	case "http", "http-discard", "http-multipart":
		return runSlowHTTP(cfg, job)
	}
	return Result{}, fmt.Errorf("unknown slow implementation %q", job.Impl)
}

// slowBudgetManager returns the Manager of a spool variant.
func slowBudgetManager(cfg Config) (*spool.Manager, error) {
	return spool.NewManager(spool.Options{MemoryBudget: cfg.SlowBudget, TempDir: cfg.TempDir})
}

// runSlowCopy runs the io.Copy variants.
func runSlowCopy(cfg Config, job Job) (Result, error) {
	soft, hard, _ := raiseFDLimit()
	n := cfg.SlowUploads
	w := newSlowWorkload(cfg, n)
	sr := &SlowResult{Uploads: n, FDSoft: soft, FDHard: hard}
	res := Result{Scenario: "slow", Impl: job.Impl, Label: job.Label, Clients: n, WantUploads: n, WantBytes: w.Total, Slow: sr}
	var m *spool.Manager
	if job.Impl == "copy" {
		var err error
		if m, err = slowBudgetManager(cfg); err != nil {
			return Result{}, err
		}
		sr.Budget = m.Stats().MemoryBudget
	}
	var (
		st     uploadStats
		flight inFlight
		ready  sync.WaitGroup
		wg     sync.WaitGroup
		peak   sync.Once // the heap profile when the first upload is in
	)
	start := make(chan struct{})
	ready.Add(n)
	for i := range n {
		wg.Go(func() {
			body := newSlowBody(cfg, w.Sizes[i], w.Seeds[i])
			var buf *spool.Buffer
			var err error
			if m != nil {
				buf, err = m.NewBuffer()
			}
			// In flight from here: set up, its bytes about to arrive.
			flight.enter()
			defer flight.leave()
			ready.Done()
			<-start
			if err != nil {
				st.fail("upload %d: new buffer: %v", i, err)
				return
			}
			var got int64
			var crc uint32
			if buf == nil {
				got, crc, err = discardSink(body)
			} else {
				_, err = io.Copy(buf, body)
				if err == nil {
					got, crc, err = bufferCRC(buf)
				}
				if cerr := buf.Close(); err == nil && cerr != nil {
					err = fmt.Errorf("close: %w", cerr)
				}
			}
			switch {
			case err != nil:
				st.fail("upload %d: %v", i, err)
			case got != w.Sizes[i] || crc != body.crc:
				st.checksumErrors.Add(1)
				msg := fmt.Sprintf("upload %d: %d bytes with crc %08x, want %d bytes with crc %08x", i, got, crc, w.Sizes[i], body.crc)
				st.firstErr.CompareAndSwap(nil, &msg)
			default:
				st.uploads.Add(1)
				st.bytes.Add(got)
				peak.Do(atPeak)
			}
		})
	}
	ready.Wait()
	t0 := time.Now()
	close(start)
	wg.Wait()
	res.WallSeconds = time.Since(t0).Seconds()
	if m != nil {
		sr.Stats = m.Stats()
		if err := m.Close(); err != nil {
			st.fail("close manager: %v", err)
		}
		res.Store = spoolStoreStats(sr.Stats)
	}
	sr.MaxInFlight = flight.most.Load()
	finishSlow(&res, &st)
	return res, nil
}

// finishSlow copies the counters of st into res.
func finishSlow(res *Result, st *uploadStats) {
	res.Uploads = int(st.uploads.Load())
	res.Bytes = st.bytes.Load()
	res.ChecksumErrors = st.checksumErrors.Load()
	res.Errors += st.errors.Load()
	if p := st.firstErr.Load(); p != nil && res.FirstError == "" {
		res.FirstError = *p
	}
}

// runSlowHTTP runs an HTTP variant: the server here, the clients in a
// process of their own.
func runSlowHTTP(cfg Config, job Job) (Result, error) {
	soft, hard, _ := raiseFDLimit()
	n, fewer := slowHTTPUploads(cfg, soft)
	w := newSlowWorkload(cfg, n)
	sr := &SlowResult{Uploads: n, Fewer: fewer, FDSoft: soft, FDHard: hard}
	res := Result{Scenario: "slow", Impl: job.Impl, Label: job.Label, Clients: n, WantUploads: n, WantBytes: w.Total, Slow: sr}
	var m *spool.Manager
	if job.Impl == "http" {
		var err error
		if m, err = slowBudgetManager(cfg); err != nil {
			return Result{}, err
		}
		sr.Budget = m.Stats().MemoryBudget
	}
	var (
		st     uploadStats
		flight inFlight
		peak   sync.Once // the heap profile when the first upload is in
	)
	handler := func(rw http.ResponseWriter, r *http.Request) {
		flight.enter()
		defer flight.leave()
		id, err := strconv.Atoi(r.URL.Query().Get("id"))
		if err != nil || id < 0 || id >= n {
			st.fail("request for upload %q", r.URL.Query().Get("id"))
			http.Error(rw, "bad id", http.StatusBadRequest)
			return
		}
		var got int64
		var crc uint32
		want := int64(-1) // the CRC-32C the client sent, if it is checked
		switch job.Impl {
		case "http":
			got, crc, want, err = slowSpoolForm(r, m)
		case "http-discard":
			// The body is not parsed: its length is checked, and the
			// file's counted.
			var body int64
			body, _, err = discardSink(r.Body)
			if _, _, length := slowParts(id, w.Sizes[id]); err == nil && body != length {
				err = fmt.Errorf("body of %d bytes, want %d", body, length)
			}
			got = w.Sizes[id]
		case "http-multipart":
			got, crc, want, err = slowMultipartDiscard(r)
		}
		switch {
		case err != nil:
			st.fail("upload %d: %v", id, err)
			http.Error(rw, err.Error(), spoolhttp.StatusCode(err))
			return
		case got != w.Sizes[id] || want >= 0 && uint32(want) != crc:
			st.checksumErrors.Add(1)
			msg := fmt.Sprintf("upload %d: %d bytes with crc %08x, want %d bytes with crc %08x", id, got, crc, w.Sizes[id], want)
			st.firstErr.CompareAndSwap(nil, &msg)
			http.Error(rw, msg, http.StatusUnprocessableEntity)
			return
		}
		st.uploads.Add(1)
		st.bytes.Add(got)
		peak.Do(atPeak)
		io.WriteString(rw, "ok\n")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return Result{}, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(handler), ReadHeaderTimeout: time.Minute}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	t0 := time.Now()
	// The clients connect and send their heads, then wait for the word to
	// go: once the handler of every connection has started, so that all
	// are in flight.
	allIn := func(conns int) bool { return flight.now.Load() >= int64(conns) }
	client, clientErr := runSlowClients(cfg, job, ln.Addr().String(), n, allIn)
	res.WallSeconds = time.Since(t0).Seconds()
	sr.Client = client
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if err := srv.Shutdown(ctx); err != nil {
		st.fail("server shutdown: %v", err)
	}
	cancel()
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		st.fail("server: %v", err)
	}
	if clientErr != nil {
		st.fail("client process: %v", clientErr)
	} else if client.Errors > 0 {
		st.fail("clients: %d errors; first: %s", client.Errors, client.FirstError)
	}
	if m != nil {
		sr.Stats = m.Stats()
		if err := m.Close(); err != nil {
			st.fail("close manager: %v", err)
		}
		res.Store = spoolStoreStats(sr.Stats)
	}
	sr.MaxInFlight = flight.most.Load()
	finishSlow(&res, &st)
	return res, nil
}

// slowSpoolForm parses r's form into Buffers of m, and returns the size
// and CRC-32C of its file, read back from its Buffer, and the CRC-32C the
// client sent.
func slowSpoolForm(r *http.Request, m *spool.Manager) (size int64, crc uint32, want int64, err error) {
	form, err := spoolhttp.ParseMultipartForm(r, m, spoolhttp.Limits{})
	if err != nil {
		return 0, 0, -1, err
	}
	defer func() {
		if rerr := form.RemoveAll(); err == nil && rerr != nil {
			err = rerr
		}
	}()
	files, vals := form.File["file"], form.Value["crc32c"]
	if len(files) != 1 || len(vals) != 1 {
		return 0, 0, -1, fmt.Errorf("form with %d files and %d checksums", len(files), len(vals))
	}
	if want, err = strconv.ParseInt(vals[0], 16, 64); err != nil {
		return 0, 0, -1, err
	}
	size, crc, err = bufferCRC(files[0].Buffer())
	if err == nil && size != files[0].Size {
		err = fmt.Errorf("FileHeader.Size %d, Buffer holds %d bytes", files[0].Size, size)
	}
	return size, crc, want, err
}

// slowMultipartDiscard parses r's form with mime/multipart, discarding
// each part through discardSink, and returns the size and CRC-32C of its
// file part and the CRC-32C the client sent.
func slowMultipartDiscard(r *http.Request) (size int64, crc uint32, want int64, err error) {
	mr, err := r.MultipartReader()
	if err != nil {
		return 0, 0, -1, err
	}
	want = -1
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, 0, -1, err
		}
		switch p.FormName() {
		case "file":
			if size, crc, err = discardSink(p); err != nil {
				return 0, 0, -1, err
			}
		case "crc32c":
			v, err := io.ReadAll(io.LimitReader(p, 64))
			if err != nil {
				return 0, 0, -1, err
			}
			if want, err = strconv.ParseInt(string(v), 16, 64); err != nil {
				return 0, 0, -1, err
			}
		}
	}
	if want < 0 {
		return 0, 0, -1, errors.New("no checksum in the form")
	}
	return size, crc, want, nil
}

// SlowClientResult is what the client process of an HTTP variant reports.
type SlowClientResult struct {
	Uploads    int     `json:"uploads"`   // sent, with a 200 response
	Connected  int     `json:"connected"` // connections that sent their request head
	Seconds    float64 `json:"seconds"`   // from the start of the first body to the last response
	Errors     int64   `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
	FDSoft     uint64  `json:"fd_soft,omitempty"`
}

// slowStartWait is how long the server waits for every handler to start
// before it tells the clients to go all the same.
const slowStartWait = 2 * time.Minute

// runSlowClients runs the client process of an HTTP variant against addr
// and returns its result. The clients connect and send their request
// heads, say so on stdout with the number of connections they have, and
// wait for a line on stdin, which runSlowClients writes once allIn reports
// that the uploads of all those connections are in flight (or after
// slowStartWait).
func runSlowClients(cfg Config, job Job, addr string, n int, allIn func(conns int) bool) (*SlowClientResult, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cfg.Scenario = "slow" // whatever the caller's, for a test that runs the server in process
	args := append(cfg.childArgs(job), "-slow-client", addr, "-slow-client-uploads", strconv.Itoa(n))
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	var stdout, stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	br := bufio.NewReader(out)
	line, err := br.ReadString('\n')
	var conns int
	if _, serr := fmt.Sscanf(line, slowReady+" %d\n", &conns); err == nil && serr == nil {
		for deadline := time.Now().Add(slowStartWait); !allIn(conns) && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
	}
	io.WriteString(stdin, "go\n")
	stdin.Close()
	_, copyErr := io.Copy(&stdout, br)
	runErr := cmd.Wait()
	if runErr == nil {
		runErr = copyErr
	}
	var cr SlowClientResult
	if err := json.Unmarshal(stdout.Bytes(), &cr); err != nil && runErr == nil {
		runErr = fmt.Errorf("bad result: %w", err)
	}
	if runErr != nil {
		return &cr, fmt.Errorf("%w; stderr: %s", runErr, strings.TrimSpace(stderr.String()))
	}
	return &cr, nil
}

// slowClientMain is the client process of the HTTP variants: it sends
// cfg.SlowClientUploads uploads of the workload to cfg.SlowClient, each on
// a connection of its own, all in flight at once, prints its
// SlowClientResult as JSON and returns the exit code.
func slowClientMain(cfg Config, stdin io.Reader, stdout, stderr io.Writer) int {
	soft, _, _ := raiseFDLimit()
	n := cfg.SlowClientUploads
	w := newSlowWorkload(cfg, n)
	res := SlowClientResult{FDSoft: soft}
	var (
		mu       sync.Mutex
		ready    sync.WaitGroup
		wg       sync.WaitGroup
		uploads  atomic.Int64
		conns    atomic.Int64
		dialSlot = make(chan struct{}, 64) // dials at once: the listen backlog is finite
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		res.Errors++
		if res.FirstError == "" {
			res.FirstError = fmt.Sprintf(format, args...)
		}
	}
	start := make(chan struct{})
	ready.Add(n)
	for i := range n {
		wg.Go(func() {
			dialSlot <- struct{}{}
			c, head, err := slowDial(cfg, w, i)
			<-dialSlot
			ready.Done()
			if err != nil {
				fail("upload %d: %v", i, err)
				return
			}
			defer c.Close()
			conns.Add(1)
			<-start
			if err := slowSend(cfg, c, head, w, i); err != nil {
				fail("upload %d: %v", i, err)
				return
			}
			uploads.Add(1)
		})
	}
	ready.Wait()
	// Every request head is out: say so, and wait for the word to go.
	fmt.Fprintf(stdout, "%s %d\n", slowReady, conns.Load())
	bufio.NewReader(stdin).ReadString('\n')
	t0 := time.Now()
	close(start)
	wg.Wait()
	res.Seconds = time.Since(t0).Seconds()
	res.Uploads, res.Connected = int(uploads.Load()), int(conns.Load())
	if err := json.NewEncoder(stdout).Encode(res); err != nil {
		fmt.Fprintln(stderr, "bench: slow client:", err)
		return 2
	}
	if res.Errors > 0 {
		return 1
	}
	return 0
}

// slowDial connects upload i's client to cfg.SlowClient and sends its
// request head and the head of its file part; it returns the connection
// and the bytes of the body that follow the file.
func slowDial(cfg Config, w slowWorkload, i int) (net.Conn, []byte, error) {
	var c net.Conn
	var err error
	for try := 0; try < 5; try++ {
		if c, err = net.DialTimeout("tcp", cfg.SlowClient, 30*time.Second); err == nil {
			break
		}
		time.Sleep(time.Duration(try+1) * 100 * time.Millisecond)
	}
	if err != nil {
		return nil, nil, err
	}
	pre, tail, length := slowParts(i, w.Sizes[i])
	head := fmt.Sprintf("POST /upload?id=%d HTTP/1.1\r\nHost: %s\r\nContent-Type: multipart/form-data; boundary=%s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		i, cfg.SlowClient, slowBoundary, length, pre)
	if _, err := io.WriteString(c, head); err != nil {
		c.Close()
		return nil, nil, err
	}
	return c, []byte(tail), nil
}

// slowParts returns the multipart body of upload i of size bytes: what
// comes before the file's bytes, what comes after them (a value part with
// the file's CRC-32C, 8 hex digits that slowSend fills in), and the
// length of the whole.
func slowParts(i int, size int64) (pre, tail string, length int64) {
	pre = fmt.Sprintf("--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"upload-%d.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n", slowBoundary, i)
	tail = fmt.Sprintf("\r\n--%s\r\nContent-Disposition: form-data; name=\"crc32c\"\r\n\r\n%08x\r\n--%s--\r\n", slowBoundary, 0, slowBoundary)
	return pre, tail, int64(len(pre)) + size + int64(len(tail))
}

// slowSend sends upload i's file in cfg.SlowRead-byte writes, each after
// cfg.SlowPause, then tail with the file's CRC-32C, and reads the
// response.
func slowSend(cfg Config, c net.Conn, tail []byte, w slowWorkload, i int) error {
	body := newSlowBody(cfg, w.Sizes[i], w.Seeds[i])
	p := make([]byte, cfg.SlowRead)
	for {
		k, err := body.Read(p)
		if k > 0 {
			if _, werr := c.Write(p[:k]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	// The 8 hex digits of the checksum sit before "\r\n--boundary--\r\n".
	at := len(tail) - len("\r\n--"+slowBoundary+"--\r\n") - 8
	copy(tail[at:], fmt.Sprintf("%08x", body.crc))
	if _, err := c.Write(tail); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(c, 512), nil)
	if err != nil {
		return err
	}
	msg, err := io.ReadAll(io.LimitReader(resp.Body, 1024))
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

func slowProgress(r Result) string {
	s := r.Slow
	if s == nil {
		return ""
	}
	return fmt.Sprintf("%.1f s, %s uploads, at most %s in flight, peak RSS %s", r.WallSeconds, commas(int64(r.Uploads)), commas(s.MaxInFlight), rssCell(r))
}
