// One log line per request: method, path (at most 200 bytes; never headers, so no tokens),
// HTTP status, bytes written and duration, as operators read access logs.
package main

import (
	"log"
	"net/http"
	"time"
)

type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// Streams (Watch, SampleStream) flush each message.
func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// CloseNotify lets grpc-gateway 1.6 cancel the call when the client goes away.
func (r *recorder) CloseNotify() <-chan bool {
	if c, ok := r.ResponseWriter.(http.CloseNotifier); ok {
		return c.CloseNotify()
	}
	return make(chan bool)
}

func accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		path := r.URL.Path
		if len(path) > 200 {
			path = path[:200] + "..."
		}
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		log.Printf("%s %q %d %d bytes %.3f s", r.Method, path, rec.status, rec.bytes, time.Since(start).Seconds())
	})
}
