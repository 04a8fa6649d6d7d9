package siem

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/offboard/offboard/internal/metrics"
)

// Metric names (on internal/metrics' default registry).
const (
	NameDropped = "offboard_siem_events_dropped_total"
	NameSent    = "offboard_siem_events_sent_total"
)

var (
	droppedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{Name: NameDropped,
		Help: "SIEM events dropped: the sink's buffer was full (overflow) or every retry failed (undeliverable)."}, []string{"sink", "reason"})
	sentTotal = prometheus.NewCounterVec(prometheus.CounterOpts{Name: NameSent,
		Help: "SIEM events a sink accepted."}, []string{"sink"})
)

func init() { metrics.DefaultRegistry().MustRegister(droppedTotal, sentTotal) }

// ErrPermanent marks a sink's answer no retry can change (a 4xx: a bad token).
var ErrPermanent = errors.New("permanent")

// Sink delivers a batch of events; it is called from one goroutine.
type Sink interface {
	Name() string
	Send(ctx context.Context, batch []Event) error
	Close() error
}

// Options tune the emitter; zero values take the defaults.
type Options struct {
	Buffer   int           // events waiting per sink (10000)
	Retries  int           // retries per batch (5)
	Backoff  time.Duration // first retry's wait, doubled each time up to 30 s (200 ms)
	MaxBatch int           // events per Send (100)
}

// Emitter fans events out to its sinks without ever blocking the caller.
// A nil *Emitter emits nothing.
type Emitter struct {
	mu      sync.RWMutex
	closed  bool
	queues  []*queue
	opts    Options
	stop    context.CancelFunc
	ctx     context.Context
	done    sync.WaitGroup
	dropped atomic.Int64
}

type queue struct {
	sink Sink
	ch   chan Event
}

// New starts one sender per sink.
func New(opts Options, sinks ...Sink) *Emitter {
	if opts.Buffer <= 0 {
		opts.Buffer = 10000
	}
	if opts.Retries <= 0 {
		opts.Retries = 5
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 200 * time.Millisecond
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 100
	}
	e := &Emitter{opts: opts}
	e.ctx, e.stop = context.WithCancel(context.Background())
	for _, s := range sinks {
		q := &queue{sink: s, ch: make(chan Event, opts.Buffer)}
		e.queues = append(e.queues, q)
		e.done.Add(1)
		go e.send(q)
	}
	return e
}

// Emit queues ev for every sink; a full queue drops it and counts it.
func (e *Emitter) Emit(ev Event) {
	if e == nil {
		return
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	for _, q := range e.queues {
		if e.closed {
			e.drop(q, "closed", 1)
			continue
		}
		select {
		case q.ch <- ev:
		default:
			e.drop(q, "overflow", 1)
		}
	}
}

// Dropped is how many events (per sink) this emitter dropped.
func (e *Emitter) Dropped() int64 {
	if e == nil {
		return 0
	}
	return e.dropped.Load()
}

func (e *Emitter) drop(q *queue, reason string, n int) {
	e.dropped.Add(int64(n))
	droppedTotal.WithLabelValues(q.sink.Name(), reason).Add(float64(n))
}

// Close stops taking events and sends what is queued until ctx ends;
// then what is left is dropped and counted.
func (e *Emitter) Close(ctx context.Context) error {
	if e == nil {
		return nil
	}
	e.mu.Lock()
	if !e.closed {
		e.closed = true
		for _, q := range e.queues {
			close(q.ch)
		}
	}
	e.mu.Unlock()
	finished := make(chan struct{})
	go func() { e.done.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-ctx.Done():
		e.stop() // abandon retries: the senders drop and count the rest
		<-finished
	}
	e.stop()
	var errs []error
	for _, q := range e.queues {
		errs = append(errs, q.sink.Close())
	}
	return errors.Join(errs...)
}

// send takes batches off one queue and delivers them with retries.
func (e *Emitter) send(q *queue) {
	defer e.done.Done()
	for ev := range q.ch {
		batch := []Event{ev}
	fill:
		for len(batch) < e.opts.MaxBatch {
			select {
			case more, ok := <-q.ch:
				if !ok {
					break fill
				}
				batch = append(batch, more)
			default:
				break fill
			}
		}
		if err := e.deliver(q.sink, batch); err != nil {
			e.drop(q, "undeliverable", len(batch))
			continue
		}
		sentTotal.WithLabelValues(q.sink.Name()).Add(float64(len(batch)))
	}
}

func (e *Emitter) deliver(s Sink, batch []Event) error {
	wait := e.opts.Backoff
	var err error
	for attempt := 0; ; attempt++ {
		if e.ctx.Err() != nil {
			return e.ctx.Err()
		}
		ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
		err = s.Send(ctx, batch)
		cancel()
		if err == nil || errors.Is(err, ErrPermanent) || attempt >= e.opts.Retries {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-e.ctx.Done():
			t.Stop()
			return e.ctx.Err()
		}
		wait = min(2*wait, 30*time.Second)
	}
}
