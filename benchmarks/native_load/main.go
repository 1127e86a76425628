// Command native_load is an open-loop gRPC load generator for the numrep
// benchmarks: it sends pre-encoded requests at a fixed arrival rate and measures
// each call's latency from its scheduled send time (so a slow server cannot hide
// latency by slowing the sender: no coordinated omission). It is written in Go
// because the Python generator spends about as much CPU per call as the server
// it measures, and on a 2-core machine that caps the rate it can offer.
//
// Requests are opaque: a file of base64 lines, each an encoded request message,
// sent as they are to -method; answers are counted, not decoded. With -stream,
// -method is numrep.v1's LookupStream and each request a LookupRequest: every
// arrival is a lookup on one of the open streams (stream.go). It prints one JSON
// object with the results.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"net"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// rawCodec sends and receives messages as the bytes they already are.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = data
	return nil
}
func (rawCodec) Name() string { return "proto" }

type result struct {
	Offered     float64            `json:"offered"`
	Sent        int                `json:"sent"`
	Measured    int                `json:"measured"`
	OK          int                `json:"ok"`
	Errors      int                `json:"errors"`
	ErrorCodes  map[string]int     `json:"error_codes"`
	Unfinished  int                `json:"unfinished"`
	AchievedQPS float64            `json:"achieved_qps"`
	LatencyMs   map[string]float64 `json:"latency_ms"`
	LowerBound  bool               `json:"lower_bound"`
	ClientCPU   float64            `json:"client_cpu"`
	Seconds     float64            `json:"seconds"`
	Connections int                `json:"connections"`
	MaxInflight int                `json:"max_inflight"`
	FirstError  string             `json:"first_error,omitempty"`
}

func main() {
	target := flag.String("target", "", "host:port")
	method := flag.String("method", "/numrep.v1.LookupService/Lookup", "full gRPC method name")
	requestsFile := flag.String("requests", "", "file of base64 request messages, one per line")
	rate := flag.Float64("rate", 1000, "arrivals per second")
	duration := flag.Duration("duration", 10*time.Second, "measured time")
	warmup := flag.Duration("warmup", time.Second, "time sent but not measured, before the measured time")
	drain := flag.Duration("drain", 3*time.Second, "time calls may still finish after the last send")
	maxInflight := flag.Int("max-inflight", 1000, "calls in flight at most; later arrivals wait (their wait counts)")
	connections := flag.Int("connections", 8, "client connections (servers sharing a port get them spread)")
	deadline := flag.Duration("deadline", 5*time.Second, "per-call deadline")
	ca := flag.String("ca", "", "PEM CA of the server's certificate (TLS)")
	cert := flag.String("cert", "", "PEM client certificate (mutual TLS)")
	key := flag.String("key", "", "PEM client key (mutual TLS)")
	bearer := flag.String("bearer", "", "a static authorization header value (for servers that ignore it)")
	stream := flag.Bool("stream", false, "send each arrival as a lookup on a LookupStream per connection")
	writeInterval := flag.Duration("write-interval", 0, "with -stream: a stream writes at most once per interval")
	flag.Parse()

	requests, err := readRequests(*requestsFile)
	check(err)
	creds, err := transport(*target, *ca, *cert, *key)
	check(err)
	conns := make([]*grpc.ClientConn, *connections)
	for i := range conns {
		conns[i], err = grpc.NewClient(*target, grpc.WithTransportCredentials(creds),
			grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
		check(err)
		conns[i].Connect()
		defer conns[i].Close()
	}
	var streams []*lookupStream
	if *stream {
		streams, err = openStreams(conns, *method, *bearer, *writeInterval)
		check(err)
	}
	fmt.Fprintln(os.Stdout, run(conns, streams, *method, requests, *rate, *warmup, *duration, *drain, *maxInflight, *deadline, *bearer))
}

func run(conns []*grpc.ClientConn, streams []*lookupStream, method string, requests [][]byte, rate float64, warmup, duration,
	drain time.Duration, maxInflight int, deadline time.Duration, bearer string) string {
	warm := int(rate * warmup.Seconds())
	total := warm + int(rate*duration.Seconds())
	latency := make([]float64, total) // ms from the scheduled send; NaN until done
	failed := make([]string, total)
	for i := range latency {
		latency[i] = math.NaN()
	}
	var done atomic.Int64
	var mu sync.Mutex
	slots := make(chan struct{}, maxInflight)
	cpuBefore := cpuSeconds()
	start := time.Now().Add(50 * time.Millisecond)
	interval := float64(time.Second) / rate
	var streamFailure string
	record := func(i int, failure string) {
		if i < 0 || i >= total {
			return
		}
		elapsed := float64(time.Since(start.Add(time.Duration(float64(i)*interval)))) / float64(time.Millisecond)
		mu.Lock()
		fresh := math.IsNaN(latency[i])
		if fresh {
			latency[i] = elapsed
			failed[i] = failure
		}
		mu.Unlock()
		if fresh {
			done.Add(1)
			<-slots
		}
	}
	for _, s := range streams {
		s.run(requests, record, func(failure string) {
			mu.Lock()
			if streamFailure == "" {
				streamFailure = failure
			}
			mu.Unlock()
		})
	}
	for i := 0; i < total; i++ {
		scheduled := start.Add(time.Duration(float64(i) * interval))
		if wait := time.Until(scheduled); wait > 0 {
			time.Sleep(wait)
		}
		slots <- struct{}{}
		if streams != nil {
			streams[i%len(streams)].add(i, record)
			continue
		}
		go func(i int, scheduled time.Time) {
			defer func() { <-slots }()
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			if bearer != "" {
				ctx = withAuthorization(ctx, bearer)
			}
			request := requests[i%len(requests)]
			var answer []byte
			err := conns[i%len(conns)].Invoke(ctx, method, &request, &answer)
			elapsed := float64(time.Since(scheduled)) / float64(time.Millisecond)
			mu.Lock()
			latency[i] = elapsed
			if err != nil {
				failed[i] = status.Code(err).String() + ": " + status.Convert(err).Message()
			}
			mu.Unlock()
			done.Add(1)
		}(i, scheduled)
	}
	end := start.Add(time.Duration(float64(total) * interval))
	for done.Load() < int64(total) && time.Now().Before(end.Add(drain)) {
		time.Sleep(10 * time.Millisecond)
	}
	stopped := time.Now()
	cpu := cpuSeconds() - cpuBefore

	mu.Lock()
	defer mu.Unlock()
	r := result{Offered: rate, Sent: total, Measured: total - warm, ErrorCodes: map[string]int{}, Connections: len(conns),
		MaxInflight: maxInflight}
	var samples []float64
	windowStart := start.Add(time.Duration(float64(warm) * interval))
	lastDone := windowStart
	for i := warm; i < total; i++ {
		if math.IsNaN(latency[i]) { // still queued or in flight: its wait so far, a lower bound
			r.Unfinished++
			samples = append(samples, float64(stopped.Sub(start.Add(time.Duration(float64(i)*interval))))/float64(time.Millisecond))
			continue
		}
		samples = append(samples, latency[i])
		finished := start.Add(time.Duration(float64(i)*interval) + time.Duration(latency[i]*float64(time.Millisecond)))
		if finished.After(lastDone) {
			lastDone = finished
		}
		if failed[i] != "" {
			r.Errors++
			code := failed[i]
			if r.FirstError == "" {
				r.FirstError = code
			}
			if j := indexOf(code, ':'); j > 0 {
				code = code[:j]
			}
			r.ErrorCodes[code]++
		} else {
			r.OK++
		}
	}
	window := math.Max(duration.Seconds(), lastDone.Sub(windowStart).Seconds())
	r.AchievedQPS = float64(r.OK) / window
	r.Seconds = window
	r.LowerBound = r.Unfinished > 0
	r.LatencyMs = percentiles(samples)
	r.ClientCPU = cpu / stopped.Sub(start).Seconds()
	if streamFailure != "" && r.FirstError == "" {
		r.FirstError = "stream: " + streamFailure
	}
	out, err := json.Marshal(r)
	check(err)
	return string(out)
}

func percentiles(samples []float64) map[string]float64 {
	if len(samples) == 0 {
		return map[string]float64{}
	}
	sort.Float64s(samples)
	at := func(p float64) float64 {
		return samples[int(math.Min(float64(len(samples)-1), math.Ceil(p/100*float64(len(samples)))-1))]
	}
	return map[string]float64{"p50": at(50), "p90": at(90), "p99": at(99), "p999": at(99.9), "max": samples[len(samples)-1]}
}

func readRequests(path string) ([][]byte, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	var requests [][]byte
	scanner := bufio.NewScanner(file)
	scanner.Buffer(make([]byte, 1<<20), 64<<20)
	for scanner.Scan() {
		if line := scanner.Text(); line != "" {
			body, err := base64.StdEncoding.DecodeString(line)
			if err != nil {
				return nil, fmt.Errorf("request %d: %w", len(requests)+1, err)
			}
			requests = append(requests, body)
		}
	}
	if len(requests) == 0 {
		return nil, fmt.Errorf("%s holds no requests", path)
	}
	return requests, scanner.Err()
}

func transport(target, ca, cert, key string) (credentials.TransportCredentials, error) {
	if ca == "" {
		return insecure.NewCredentials(), nil
	}
	pem, err := os.ReadFile(ca)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", ca)
	}
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		return nil, err
	}
	config := &tls.Config{RootCAs: roots, ServerName: host, MinVersion: tls.VersionTLS12}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, err
		}
		config.Certificates = []tls.Certificate{pair}
	}
	return credentials.NewTLS(config), nil
}

func cpuSeconds() float64 {
	var usage syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &usage) != nil {
		return 0
	}
	seconds := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return seconds(usage.Utime) + seconds(usage.Stime)
}

func indexOf(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "native_load:", err)
		os.Exit(2)
	}
}
