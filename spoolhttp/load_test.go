package spoolhttp_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolkit/spool"
	"github.com/spoolkit/spool/spoolhttp"
)

// fileSum is what the test server reports for each file of a form.
type fileSum struct {
	Filename string
	Size     int64
	SHA256   string
}

// TestConcurrentForms: 200 clients post forms with several files at once
// to a server on loopback whose Manager has a 256 KiB budget. Every file
// reaches the handler intact, memory never passes the budget, and no
// buffer is left afterwards.
func TestConcurrentForms(t *testing.T) {
	const (
		clients = 200
		budget  = 256 << 10
		maxFile = 512 << 10
	)
	m := newManager(t, spool.Options{MemoryBudget: budget, ChunkSize: 4 << 10})
	var overBudget atomic.Int64
	check := func() {
		if s := m.Stats(); s.MemoryInUse > s.MemoryBudget {
			overBudget.Store(s.MemoryInUse)
		}
	}

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := spoolhttp.ParseMultipartForm(r, m, spoolhttp.Limits{MaxTotalBytes: 8 << 20})
		if err != nil {
			spoolhttp.Error(w, err)
			return
		}
		defer f.RemoveAll()
		check()
		out := map[string]any{"values": f.Value}
		var sums []fileSum
		for _, fh := range f.File["files"] {
			rd, err := fh.Open()
			if err != nil {
				spoolhttp.Error(w, err)
				return
			}
			h := sha256.New()
			if _, err := io.Copy(h, rd); err != nil {
				spoolhttp.Error(w, err)
				return
			}
			sums = append(sums, fileSum{fh.Filename, fh.Size, hex.EncodeToString(h.Sum(nil))})
		}
		out["files"] = sums
		check()
		json.NewEncoder(w).Encode(out)
	}))
	defer srv.Close()
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 60 * time.Second}

	// Sample the Manager while the clients run.
	done := make(chan struct{})
	var samples atomic.Int64
	var sampler sync.WaitGroup
	sampler.Go(func() {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				check()
				samples.Add(1)
			}
		}
	})

	var wg sync.WaitGroup
	var spilled atomic.Int64
	for c := range clients {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(c), 42))
			var parts []part
			var want []fileSum
			for i := range 1 + r.IntN(4) {
				// Sizes log-uniform from 1 byte to maxFile.
				n := int(math.Exp(r.Float64() * math.Log(maxFile)))
				b := randBytes(r, n)
				name := fmt.Sprintf("c%d-%d.bin", c, i)
				parts = append(parts, file("files", name, b))
				want = append(want, fileSum{name, int64(n), sum(b)})
			}
			parts = append(parts, value("client", fmt.Sprint(c)), value("note", "hello"))
			body, ct := formBody(t, parts...)
			resp, err := client.Post(srv.URL, ct, bytes.NewReader(body))
			if err != nil {
				t.Errorf("client %d: %v", c, err)
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				msg, _ := io.ReadAll(resp.Body)
				t.Errorf("client %d: %s: %s", c, resp.Status, msg)
				return
			}
			var got struct {
				Values map[string][]string
				Files  []fileSum
			}
			if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
				t.Errorf("client %d: %v", c, err)
				return
			}
			if v := got.Values["client"]; len(v) != 1 || v[0] != fmt.Sprint(c) || got.Values["note"][0] != "hello" {
				t.Errorf("client %d: values %v", c, got.Values)
			}
			if len(got.Files) != len(want) {
				t.Errorf("client %d: %d files, want %d", c, len(got.Files), len(want))
				return
			}
			for i := range want {
				if got.Files[i] != want[i] {
					t.Errorf("client %d: file %d: got %+v, want %+v", c, i, got.Files[i], want[i])
				}
				if want[i].Size > budget {
					spilled.Add(1)
				}
			}
		})
	}
	wg.Wait()
	close(done)
	sampler.Wait()
	srv.Close() // waits for the handlers
	check()
	if v := overBudget.Load(); v != 0 {
		t.Errorf("memory in use reached %d, budget %d", v, budget)
	}
	s := m.Stats()
	t.Logf("%d samples; %d spills, %d evictions, %d files larger than the budget", samples.Load(), s.Spills, s.Evictions, spilled.Load())
	if s.Spills == 0 {
		t.Error("nothing spilled: the test does not exercise the budget")
	}
	checkClean(t, m)
}
