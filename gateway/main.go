// qdm-gateway: qdm's public API (Models, QuantizeJobs, Sampling) as HTTP/JSON, transcoded by
// grpc-gateway from the services' google.api.http annotations (proto/qdm/v1), plus an
// OpenAI-compatible POST /v1/images/generations (openai_images.go). Every call is forwarded
// to the scheduler over gRPC: an `Authorization: Bearer TOKEN` header goes with it as the
// call's authorization metadata, gRPC errors come back as their HTTP codes with a JSON body.
//
//	qdm-gateway --listen 0.0.0.0:8080 --scheduler qdm-scheduler:50051 [--scheduler-ca ca.pem]
//	            [--tls-cert cert.pem --tls-key key.pem] [--images-model fmnist-t2i]
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io/ioutil"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"

	qdm "qdm/gen/qdm/v1"
)

// The largest gRPC answer the gateway takes from the scheduler (a Sample of many PNGs).
const maxAnswerBytes = 64 << 20

// The largest request body it reads (the scheduler takes 4 MiB messages): more is refused
// without being buffered.
const maxRequestBytes = 4 << 20

func dialOptions(ca, serverName, cert, key string) ([]grpc.DialOption, error) {
	opts := []grpc.DialOption{
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxAnswerBytes)),
		// Redial a scheduler that is away (restarted, failed over, not up yet) within 2 s, not
		// gRPC's default of up to 2 minutes: calls answer 503 only while it is really away.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		}),
	}
	if ca == "" {
		if cert != "" || key != "" {
			return nil, errors.New("--scheduler-cert and --scheduler-key need --scheduler-ca (TLS to the scheduler)")
		}
		return append(opts, grpc.WithInsecure()), nil
	}
	pem, err := ioutil.ReadFile(ca)
	if err != nil {
		return nil, fmt.Errorf("--scheduler-ca: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("--scheduler-ca holds no PEM certificate")
	}
	cfg := &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12}
	if cert != "" || key != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("--scheduler-cert / --scheduler-key: %v", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return append(opts, grpc.WithTransportCredentials(credentials.NewTLS(cfg))), nil
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "HOST:PORT the HTTP/JSON API listens on")
	scheduler := flag.String("scheduler", "localhost:50051", "the qdm-scheduler's gRPC address")
	ca := flag.String("scheduler-ca", "", "PEM CA of the scheduler's certificate: TLS to the scheduler (empty: plaintext)")
	serverName := flag.String("scheduler-server-name", "", "the name the scheduler's certificate must carry (default: the host of --scheduler)")
	clientCert := flag.String("scheduler-cert", "", "PEM client certificate for a scheduler that asks for one (mutual TLS)")
	clientKey := flag.String("scheduler-key", "", "its PEM key")
	tlsCert := flag.String("tls-cert", "", "PEM certificate: serve HTTPS (with --tls-key)")
	tlsKey := flag.String("tls-key", "", "PEM key of --tls-cert")
	imagesModel := flag.String("images-model", "", "the model or artifact /v1/images/generations uses when a request names none")
	imagesGuidance := flag.Float64("images-guidance", 7.5, "the guidance scale /v1/images/generations uses when a request gives none")
	flag.Parse()
	if flag.NArg() > 0 {
		log.Fatalf("qdm-gateway: unexpected argument %q (flags only; --help lists them)", flag.Arg(0))
	}
	if (*tlsCert == "") != (*tlsKey == "") {
		log.Fatal("qdm-gateway: --tls-cert and --tls-key go together")
	}
	opts, err := dialOptions(*ca, *serverName, *clientCert, *clientKey)
	if err != nil {
		log.Fatalf("qdm-gateway: %v", err)
	}
	conn, err := grpc.Dial(*scheduler, opts...)
	if err != nil {
		log.Fatalf("qdm-gateway: %v", err)
	}
	defer conn.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Proto field names in JSON (as in the .proto files and the gRPC docs), zero values included.
	gw := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{OrigName: true, EmitDefaults: true}),
		runtime.WithProtoErrorHandler(protoErrorHandler))
	for _, register := range []func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error{
		qdm.RegisterModelsHandler, qdm.RegisterQuantizeJobsHandler, qdm.RegisterSamplingHandler,
	} {
		if err := register(ctx, gw, conn); err != nil {
			log.Fatalf("qdm-gateway: %v", err)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/images/generations", &imagesHandler{
		models: qdm.NewModelsClient(conn), sampling: qdm.NewSamplingClient(conn), defaultModel: *imagesModel, guidance: *imagesGuidance})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.Handle("/", gw)

	bounded := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > maxRequestBytes {
			writeError(w, http.StatusRequestEntityTooLarge, "invalid_request_error", "invalid_argument",
				fmt.Sprintf("the request body is over %d bytes", maxRequestBytes))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxRequestBytes)
		mux.ServeHTTP(w, r)
	})
	server := &http.Server{Addr: *listen, Handler: accessLog(bounded), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
	go func() {
		stop := make(chan os.Signal, 1)
		signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
		<-stop
		shutdown, done := context.WithTimeout(context.Background(), 10*time.Second)
		defer done()
		server.Shutdown(shutdown)
	}()
	log.Printf("qdm-gateway: HTTP/JSON on %s (%s), scheduler %s (%s)", *listen,
		map[bool]string{true: "https", false: "http"}[*tlsCert != ""], *scheduler, map[bool]string{true: "TLS", false: "plaintext"}[*ca != ""])
	if *tlsCert != "" {
		err = server.ListenAndServeTLS(*tlsCert, *tlsKey)
	} else {
		err = server.ListenAndServe()
	}
	if err != nil && err != http.ErrServerClosed {
		log.Fatalf("qdm-gateway: %v", err)
	}
}
