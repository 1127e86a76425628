package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// lookupStream multiplexes lookups over one numrep.v1 LookupStream, as the carrier
// SDK does: arrivals queue on a channel, a sender writes every queued lookup as one
// LookupStreamRequest, and a receiver matches each StreamAnswer to its lookup by id
// (the arrival's index + 1). Messages are encoded and read by hand (no generated code).
// With a write interval, the sender writes at most once per interval, as the SDK's
// stream_write_interval does: a lookup arriving sooner waits to leave with the next.
type lookupStream struct {
	stream   grpc.ClientStream
	queue    chan int
	interval time.Duration

	mu          sync.Mutex
	outstanding map[int]struct{} // sent or queued, not yet answered
	dead        string           // why the stream failed, once it has
}

// maxLookups is the most lookups one request carries: the exchange ends a stream sent more.
const maxLookups = 1000

// answered reports lookup i done; failure is "" for an answer with a verdict.
type answered func(i int, failure string)

func openStreams(conns []*grpc.ClientConn, method, bearer string, interval time.Duration) ([]*lookupStream, error) {
	streams := make([]*lookupStream, len(conns))
	desc := &grpc.StreamDesc{StreamName: "LookupStream", ServerStreams: true, ClientStreams: true}
	for i, conn := range conns {
		ctx := context.Background()
		if bearer != "" {
			ctx = withAuthorization(ctx, bearer)
		}
		stream, err := conn.NewStream(ctx, desc, method)
		if err != nil {
			return nil, err
		}
		streams[i] = &lookupStream{stream: stream, queue: make(chan int, 1<<16), interval: interval, outstanding: map[int]struct{}{}}
	}
	return streams, nil
}

func (s *lookupStream) run(requests [][]byte, done answered, failed func(string)) {
	answer := func(i int, failure string) {
		s.mu.Lock()
		_, waiting := s.outstanding[i]
		delete(s.outstanding, i)
		s.mu.Unlock()
		if waiting {
			done(i, failure)
		}
	}
	fail := func(why string) { // every lookup still waiting fails with the stream, and frees its slot
		failed(why)
		s.mu.Lock()
		s.dead = why
		left := make([]int, 0, len(s.outstanding))
		for i := range s.outstanding {
			left = append(left, i)
		}
		s.outstanding = map[int]struct{}{}
		s.mu.Unlock()
		for _, i := range left {
			done(i, "stream: "+why)
		}
	}
	go s.send(requests, fail)
	go s.receive(answer, fail)
}

// add queues lookup i, or fails it at once when the stream is dead.
func (s *lookupStream) add(i int, done answered) {
	s.mu.Lock()
	dead := s.dead
	if dead == "" {
		s.outstanding[i] = struct{}{}
	}
	s.mu.Unlock()
	if dead != "" {
		done(i, "stream: "+dead)
		return
	}
	s.queue <- i
}

func (s *lookupStream) send(requests [][]byte, failed func(string)) {
	var wrote time.Time
	for i := range s.queue {
		if wait := time.Until(wrote.Add(s.interval)); wait > 0 {
			time.Sleep(wait)
		}
		message := appendLookup(nil, i, requests[i%len(requests)])
		for count, more := 1, true; more && count < maxLookups; count++ {
			select {
			case j := <-s.queue:
				message = appendLookup(message, j, requests[j%len(requests)])
			default:
				more = false
			}
		}
		wrote = time.Now()
		if err := s.stream.SendMsg(&message); err != nil {
			failed("send: " + err.Error())
			return
		}
	}
}

func (s *lookupStream) receive(done answered, failed func(string)) {
	for {
		var response []byte
		if err := s.stream.RecvMsg(&response); err != nil {
			failed(status.Code(err).String() + ": " + status.Convert(err).Message())
			return
		}
		if err := eachAnswer(response, done); err != nil {
			failed(err.Error())
			return
		}
	}
}

// appendLookup appends LookupStreamRequest.lookups{id: i+1, request: request}.
func appendLookup(message []byte, i int, request []byte) []byte {
	var inner []byte
	inner = append(inner, 0x08)
	inner = binary.AppendUvarint(inner, uint64(i+1))
	inner = append(inner, 0x12)
	inner = binary.AppendUvarint(inner, uint64(len(request)))
	inner = append(inner, request...)
	message = append(message, 0x0a)
	message = binary.AppendUvarint(message, uint64(len(inner)))
	return append(message, inner...)
}

// eachAnswer reads a LookupStreamResponse and reports each answer's lookup.
func eachAnswer(response []byte, done answered) error {
	return fields(response, func(field int, value uint64, body []byte) error {
		if field != 1 || body == nil {
			return nil
		}
		var id, code uint64
		var message string
		err := fields(body, func(field int, value uint64, body []byte) error {
			switch field {
			case 1:
				id = value
			case 3:
				code = value
			case 4:
				message = string(body)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if id == 0 {
			return errors.New("an answer without a lookup id")
		}
		failure := ""
		if code != 0 {
			failure = fmt.Sprintf("%s: %s", codeName(code), message)
		}
		done(int(id-1), failure)
		return nil
	})
}

// fields walks an encoded message: each varint field's value, or each length-delimited field's bytes.
func fields(data []byte, each func(field int, value uint64, body []byte) error) error {
	for len(data) > 0 {
		key, n := binary.Uvarint(data)
		if n <= 0 {
			return errors.New("bad field key")
		}
		data = data[n:]
		field, wire := int(key>>3), key&7
		switch wire {
		case 0:
			value, n := binary.Uvarint(data)
			if n <= 0 {
				return errors.New("bad varint")
			}
			data = data[n:]
			if err := each(field, value, nil); err != nil {
				return err
			}
		case 2:
			length, n := binary.Uvarint(data)
			if n <= 0 || uint64(len(data)-n) < length {
				return errors.New("bad length")
			}
			body := data[n : n+int(length)]
			data = data[n+int(length):]
			if err := each(field, 0, body); err != nil {
				return err
			}
		case 1:
			data = data[min(8, len(data)):]
		case 5:
			data = data[min(4, len(data)):]
		default:
			return fmt.Errorf("wire type %d", wire)
		}
	}
	return nil
}

var codeNames = map[uint64]string{3: "InvalidArgument", 4: "DeadlineExceeded", 8: "ResourceExhausted", 13: "Internal", 14: "Unavailable", 16: "Unauthenticated"}

func codeName(code uint64) string {
	if name, ok := codeNames[code]; ok {
		return name
	}
	return fmt.Sprintf("Code(%d)", code)
}
