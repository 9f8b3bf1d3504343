package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// profiler profiles the bot binary of BenchmarkExportAck when
// OSIO_BENCH_PPROF=DIR is set: the bot is built with -tags pprof (see
// app/pprof.go) and serves net/http/pprof; a CPU profile and an execution
// trace of the c=50 phase, and goroutine and heap profiles at its end,
// are written to DIR. A nil profiler does nothing.
type profiler struct {
	b    *testing.B
	dir  string
	addr string
	bin  string
	wg   sync.WaitGroup
}

func newProfiler(b *testing.B) *profiler {
	dir := os.Getenv("OSIO_BENCH_PPROF")
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	bin := filepath.Join(b.TempDir(), "osio-bot-pprof")
	if out, err := exec.Command("go", "build", "-tags", "pprof", "-o", bin, "../cmd/osio-bot").CombinedOutput(); err != nil {
		b.Fatalf("building the bot with pprof: %v\n%s", err, out)
	}
	p := &profiler{b: b, dir: dir, addr: addr, bin: bin}
	b.Cleanup(p.wg.Wait)
	return p
}

func (p *profiler) environ() []string {
	if p == nil {
		return nil
	}
	return []string{"OSIO_PPROF=" + p.addr}
}

func (p *profiler) seconds() int {
	if v := os.Getenv("OSIO_BENCH_PPROF_SECONDS"); v != "" {
		var n int
		fmt.Sscan(v, &n)
		if n > 0 {
			return n
		}
	}
	return 3
}

// at50 starts the CPU profile and the trace of the c=50 phase.
func (p *profiler) at50() {
	if p == nil {
		return
	}
	s := p.seconds()
	p.fetch(fmt.Sprintf("profile?seconds=%d", s), "cpu.pprof")
	p.fetch(fmt.Sprintf("trace?seconds=%d", s), "trace.out")
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for i := range s * 2 {
			time.Sleep(500 * time.Millisecond)
			p.get("goroutine?debug=1", fmt.Sprintf("goroutine-%02d.txt", i))
			p.vars(fmt.Sprintf("vars-%02d.json", i))
		}
	}()
}

// snapshot writes the goroutines and the heap now.
func (p *profiler) snapshot(name string) {
	if p == nil {
		return
	}
	p.get("goroutine?debug=1", name+"-goroutine.txt")
	p.vars(name + "-vars.json")
	p.get("heap", name+"-heap.pprof")
	p.get("allocs", name+"-allocs.pprof")
}

func (p *profiler) fetch(path, file string) {
	p.wg.Add(1)
	go func() { defer p.wg.Done(); p.get(path, file) }()
}

// vars writes the runtime's MemStats (expvar).
func (p *profiler) vars(file string) {
	p.getURL("http://"+p.addr+"/debug/vars", file)
}

func (p *profiler) get(path, file string) {
	p.getURL("http://"+p.addr+"/debug/pprof/"+path, file)
}

func (p *profiler) getURL(u, file string) {
	path := u
	resp, err := http.Get(u)
	if err != nil {
		p.b.Logf("pprof %s: %v", path, err)
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(filepath.Join(p.dir, file))
	if err != nil {
		p.b.Logf("pprof %s: %v", path, err)
		return
	}
	defer f.Close()
	_, _ = io.Copy(f, resp.Body)
}
