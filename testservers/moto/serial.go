package moto

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
)

// OneAtATime serves moto through a proxy that forwards one request at a
// time, and returns the proxy's URL and a function that closes it.
//
// MOTO GAP: moto_server (5.2.1) is not safe under concurrent requests. Its
// TransactWriteItems deep-copies every table it touches as a backup and
// puts the copy back when an item fails; concurrent requests make the copy
// fail (HTTP 500, "dictionary changed size during iteration") and a
// rollback undoes what other requests wrote meanwhile. DynamoDB isolates
// transactions. Clients of the DynamoDB store (several store clients, or
// several bot processes) reach moto through this proxy; what the tests then
// show about concurrency is that the store's compare-and-sets decide
// correctly between interleaved clients, not that DynamoDB applies each
// transaction atomically (AWS's guarantee). See store/dynamo.
func (s *Server) OneAtATime() (string, func()) {
	target, _ := url.Parse(s.URL)
	rp := httputil.NewSingleHostReverseProxy(target)
	var mu sync.Mutex
	px := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	return px.URL, px.Close
}
