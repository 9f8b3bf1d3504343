//go:build pprof

package app

// Built only with -tags pprof (the ack benchmark does, when asked with
// OSIO_BENCH_PPROF): OSIO_PPROF=ADDR serves net/http/pprof there, to
// profile the bot binary under load. Production builds have no such
// listener. /debug/vars has the runtime's MemStats (StackInuse,
// HeapInuse, …).

import (
	_ "expvar"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
)

func init() {
	addr := os.Getenv("OSIO_PPROF")
	if addr == "" {
		return
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		panic("OSIO_PPROF: " + err.Error())
	}
	go func() { _ = http.Serve(ln, http.DefaultServeMux) }()
}
