package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strings"
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
	mu   sync.Mutex
	rss  *os.File // VmRSS, RssAnon, RssFile every 100 ms, and marks
	t0   time.Time
	b    *testing.B
	dir  string
	addr string
	bin  string
	pid  int // the bot's, once watched
	// benchCPU is this process's CPU profile of the c=50 phase.
	benchCPU *os.File
	wg       sync.WaitGroup
}

func newProfiler(b *testing.B) *profiler {
	dir := os.Getenv("OSIO_BENCH_PPROF")
	if dir == "" {
		return nil
	}
	dir = filepath.Join(dir, filepath.Base(b.Name())) // healthy, stalled
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

// watch samples pid's memory every 100 ms into DIR/rss.txt until the
// process ends.
func (p *profiler) watch(pid int) {
	if p == nil {
		return
	}
	f, err := os.Create(filepath.Join(p.dir, "rss.txt"))
	if err != nil {
		p.b.Fatal(err)
	}
	p.rss, p.t0, p.pid = f, time.Now(), pid
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer f.Close()
		for {
			data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
			if err != nil {
				return
			}
			var line []string
			for _, l := range strings.Split(string(data), "\n") {
				for _, k := range []string{"VmRSS:", "RssAnon:", "RssFile:", "Threads:"} {
					if strings.HasPrefix(l, k) {
						line = append(line, strings.Join(strings.Fields(l), " "))
					}
				}
			}
			p.mu.Lock()
			fmt.Fprintf(f, "%.2f %s\n", time.Since(p.t0).Seconds(), strings.Join(line, " "))
			p.mu.Unlock()
			time.Sleep(100 * time.Millisecond)
		}
	}()
}

// phaseEnds marks the end of the c=50 phase and ends this process's
// profile of it.
func (p *profiler) phaseEnds() {
	if p == nil {
		return
	}
	p.mark("c=50 ends")
	if p.benchCPU != nil {
		pprof.StopCPUProfile()
		p.benchCPU.Close()
		p.benchCPU = nil
	}
}

// mark writes what happens now into rss.txt.
func (p *profiler) mark(what string) {
	if p == nil || p.rss == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.rss, "%.2f MARK %s\n", time.Since(p.t0).Seconds(), what)
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
	p.mark("c=50 starts")
	// This process too (the Slack server and the load), for the phase
	// only: ended by phaseEnds.
	if f, err := os.Create(filepath.Join(p.dir, "bench-cpu.pprof")); err == nil {
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
		} else {
			p.benchCPU = f
		}
	}
	s := p.seconds()
	p.fetch(fmt.Sprintf("profile?seconds=%d", s), "cpu.pprof")
	if os.Getenv("OSIO_BENCH_PPROF_TRACE") != "0" {
		// The trace costs the bot CPU of its own (tracebacks); =0 leaves
		// it out, for a CPU profile closer to the bot's own work.
		p.fetch(fmt.Sprintf("trace?seconds=%d", s), "trace.out")
	}
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
	if p.pid != 0 {
		// Which mappings the resident memory is in (the binary, the
		// store's file, the heap).
		if data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", p.pid)); err == nil {
			_ = os.WriteFile(filepath.Join(p.dir, name+"-smaps.txt"), data, 0o644)
		}
	}
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
