package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolkit/spool"
)

const (
	budget    = 1 << 20
	maxSize   = 4 << 20 // largest upload
	clients   = 100
	perClient = 3
)

// testServer runs the upload server on a loopback port, with a Manager of
// a 1 MiB budget.
type testServer struct {
	t      *testing.T
	m      *spool.Manager
	srv    *httptest.Server
	client *http.Client
}

func startServer(t *testing.T) *testServer {
	m, err := spool.NewManager(spool.Options{MemoryBudget: budget, ChunkSize: 16 << 10, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	srv := httptest.NewServer(newServer(m)) // listens on 127.0.0.1
	t.Cleanup(srv.Close)
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: clients}
	t.Cleanup(tr.CloseIdleConnections)
	return &testServer{t: t, m: m, srv: srv, client: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// upload posts data, raw or as a multipart form, and returns the reply.
func (s *testServer) upload(data []byte, multi, chunked bool) (uploadResponse, error) {
	var body io.Reader = bytes.NewReader(data)
	ct := "application/octet-stream"
	if multi {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		mw.WriteField("comment", "test upload")
		fw, _ := mw.CreateFormFile("file", "data.bin")
		fw.Write(data)
		mw.Close()
		body, ct = &b, mw.FormDataContentType()
	}
	if chunked {
		body = io.MultiReader(body) // hides the length: chunked encoding
	}
	resp, err := s.client.Post(s.srv.URL+"/upload", ct, body)
	if err != nil {
		return uploadResponse{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		msg, _ := io.ReadAll(resp.Body)
		return uploadResponse{}, fmt.Errorf("upload: %s: %s", resp.Status, msg)
	}
	var ur uploadResponse
	err = json.NewDecoder(resp.Body).Decode(&ur)
	return ur, err
}

// do sends a request and returns the response with its body read.
func (s *testServer) do(method, path string, header ...string) (*http.Response, []byte, error) {
	req, err := http.NewRequest(method, s.srv.URL+path, nil)
	if err != nil {
		return nil, nil, err
	}
	for i := 0; i < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// expect sends a request and checks the status of the response.
func (s *testServer) expect(method, path string, code int) error {
	resp, _, err := s.do(method, path)
	if err != nil {
		return err
	}
	if resp.StatusCode != code {
		return fmt.Errorf("%s %s: %s, want %d", method, path, resp.Status, code)
	}
	return nil
}

// sampleStats reads /stats, and the Manager directly, until stop is
// closed, and reports whether memory ever passed the budget.
func (s *testServer) sampleStats(stop <-chan struct{}) (samples int, maxSeen int64, err error) {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return samples, maxSeen, nil
		case <-tick.C:
		}
		_, body, err := s.do("GET", "/stats")
		if err != nil {
			return samples, maxSeen, err
		}
		var st spool.Stats
		if err := json.Unmarshal(body, &st); err != nil {
			return samples, maxSeen, fmt.Errorf("/stats: %v: %s", err, body)
		}
		direct := s.m.Stats()
		for _, v := range []spool.Stats{st, direct} {
			maxSeen = max(maxSeen, v.MemoryInUse)
			if v.MemoryInUse > v.MemoryBudget || v.MemoryBudget != budget {
				return samples, maxSeen, fmt.Errorf("memory in use %d, budget %d", v.MemoryInUse, v.MemoryBudget)
			}
		}
		samples++
	}
}

// TestUploadServer: 100 clients upload 3 files each, of sizes log-uniform
// up to 4 MiB, raw or multipart, download and check them, and delete
// them, while the server's memory is sampled through /stats.
func TestUploadServer(t *testing.T) {
	s := startServer(t)
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	var samples int
	var maxSeen int64
	var sampleErr error
	sampler.Go(func() { samples, maxSeen, sampleErr = s.sampleStats(stop) })
	// And the Manager directly, more often than a busy server answers.
	var direct atomic.Int64
	sampler.Go(func() {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if st := s.m.Stats(); st.MemoryInUse > st.MemoryBudget {
				t.Errorf("memory in use %d, budget %d", st.MemoryInUse, st.MemoryBudget)
				return
			}
			direct.Add(1)
		}
	})

	var wg sync.WaitGroup
	var bytesUp, spilled atomic.Int64
	for c := range clients {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(c), 7))
			for i := range perClient {
				if err := s.roundTrip(r, c, i, &bytesUp, &spilled); err != nil {
					t.Errorf("client %d, upload %d: %v", c, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	sampler.Wait()
	if sampleErr != nil {
		t.Error(sampleErr)
	}
	s.srv.Close() // waits for the handlers
	st := s.m.Stats()
	t.Logf("%d bytes uploaded; %d /stats samples, %d direct ones, at most %d bytes of memory in use; %d spills, %d files larger than the budget",
		bytesUp.Load(), samples, direct.Load(), maxSeen, st.Spills, spilled.Load())
	if samples == 0 {
		t.Error("no /stats sample")
	}
	if st.Buffers != 0 || st.MemoryInUse != 0 || st.DiskInUse != 0 {
		t.Errorf("left after every file was deleted: %+v", st)
	}
	if st.Spills == 0 {
		t.Error("nothing spilled: the test does not exercise the budget")
	}
}

// roundTrip uploads a random file, downloads it whole and in part, checks
// it, and deletes it.
func (s *testServer) roundTrip(r *rand.Rand, c, i int, bytesUp, spilled *atomic.Int64) error {
	n := int(math.Exp(r.Float64() * math.Log(maxSize)))
	data := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(c), byte(i)}).Read(data)
	sum := hexSum(data)
	bytesUp.Add(int64(n))
	if n > budget {
		spilled.Add(1)
	}

	ur, err := s.upload(data, r.IntN(2) == 0, r.IntN(2) == 0)
	if err != nil {
		return err
	}
	if ur.Size != int64(n) || ur.SHA256 != sum {
		return fmt.Errorf("upload of %d bytes, sha256 %s: reply %+v", n, sum, ur)
	}
	resp, body, err := s.do("GET", "/download/"+ur.ID)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || hexSum(body) != sum {
		return fmt.Errorf("download: %s, %d bytes, sha256 %s; want %d bytes, %s", resp.Status, len(body), hexSum(body), n, sum)
	}
	if n > 10 {
		lo := r.IntN(n - 10)
		hi := lo + r.IntN(n-lo)
		resp, body, err := s.do("GET", "/download/"+ur.ID, "Range", fmt.Sprintf("bytes=%d-%d", lo, hi))
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, data[lo:hi+1]) {
			return fmt.Errorf("range %d-%d: %s, %d bytes", lo, hi, resp.Status, len(body))
		}
	}
	if err := s.expect("DELETE", "/files/"+ur.ID, http.StatusNoContent); err != nil {
		return err
	}
	return s.expect("GET", "/download/"+ur.ID, http.StatusNotFound)
}

// TestUploadServerErrors: bad uploads get the status spoolhttp gives them,
// and leave nothing behind.
func TestUploadServerErrors(t *testing.T) {
	s := startServer(t)
	post := func(ct, body string) int {
		resp, err := s.client.Post(s.srv.URL+"/upload", ct, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	mw.WriteField("only", "a value")
	mw.Close()
	if code := post(mw.FormDataContentType(), b.String()); code != http.StatusBadRequest {
		t.Errorf("form without a file: %d", code)
	}
	if code := post(mw.FormDataContentType(), b.String()[:b.Len()/2]); code != http.StatusBadRequest {
		t.Errorf("truncated form: %d", code)
	}
	if code := post("multipart/form-data", "x"); code != http.StatusBadRequest {
		t.Errorf("no boundary: %d", code)
	}
	for _, err := range []error{
		s.expect("GET", "/download/nope", http.StatusNotFound),
		s.expect("DELETE", "/files/nope", http.StatusNotFound),
		s.expect("GET", "/upload", http.StatusMethodNotAllowed),
	} {
		if err != nil {
			t.Error(err)
		}
	}
	s.srv.Close()
	if st := s.m.Stats(); st.Buffers != 0 {
		t.Errorf("%d buffers left", st.Buffers)
	}
}

// TestUploadServerCurl: curl, if installed, uploads (raw and multipart)
// and downloads files on loopback, and the checksums match.
func TestUploadServerCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed")
	}
	s := startServer(t)
	dir := t.TempDir()
	run := func(args ...string) []byte {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		// -q: no .curlrc; --noproxy: loopback only, whatever the environment.
		cmd := exec.CommandContext(ctx, curl, append([]string{"-q", "-sS", "-f", "--noproxy", "*", "--max-time", "20"}, args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("curl %q: %v: %s", args, err, stderr.Bytes())
		}
		return out
	}
	for i, tc := range []struct {
		size int
		args []string // how to send the file at %s
	}{
		{1000, []string{"--data-binary", "@%s", "-H", "Content-Type: application/octet-stream"}},
		{3 << 20, []string{"-F", "file=@%s"}},
		{2<<20 + 5, []string{"-T", "%s", "-X", "POST"}},
	} {
		data := make([]byte, tc.size)
		rand.NewChaCha8([32]byte{99, byte(i)}).Read(data)
		in := filepath.Join(dir, fmt.Sprintf("in%d.bin", i))
		if err := os.WriteFile(in, data, 0o600); err != nil {
			t.Fatal(err)
		}
		var args []string
		for _, a := range tc.args {
			args = append(args, strings.ReplaceAll(a, "%s", in))
		}
		var ur uploadResponse
		if err := json.Unmarshal(run(append(args, s.srv.URL+"/upload")...), &ur); err != nil {
			t.Fatal(err)
		}
		if ur.Size != int64(tc.size) || ur.SHA256 != hexSum(data) {
			t.Errorf("upload %d: reply %+v, want %d bytes, %s", i, ur, tc.size, hexSum(data))
		}
		out := filepath.Join(dir, fmt.Sprintf("out%d.bin", i))
		run("-o", out, s.srv.URL+"/download/"+ur.ID)
		got, err := os.ReadFile(out)
		if err != nil || hexSum(got) != ur.SHA256 {
			t.Errorf("download %d: %v, sha256 %s, want %s", i, err, hexSum(got), ur.SHA256)
		}
		if part := run("-r", "100-199", s.srv.URL+"/download/"+ur.ID); !bytes.Equal(part, data[100:200]) {
			t.Errorf("range of upload %d differs", i)
		}
		run("-X", "DELETE", s.srv.URL+"/files/"+ur.ID)
	}
	s.srv.Close()
	if st := s.m.Stats(); st.Buffers != 0 {
		t.Errorf("%d buffers left", st.Buffers)
	}
}
