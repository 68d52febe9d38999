// kvbench-gowatch: the receiving side of `kvbench load --workload watch`, in Go.
//
// A Python gRPC client spends tens of microseconds of CPU per received stream message, so
// 1,000 watchers x 100 puts/s (100,000 events/s) measured the load generator rather than
// the server. This program receives the events with etcd's own Go client (clientv3, the
// client kube-apiserver watches with) and speaks the worker protocol of
// bench/load/worker.py on stdin/stdout, so the driver treats it as one more worker:
//
//	driver -> worker  {"spec": WorkerSpec}
//	worker -> driver  {"ready": true}           every watcher created
//	driver -> worker  {"start_at": <unix s>}
//	worker -> driver  {"result": Outcome, "elapsed_s": x, "cpu_s": y}
//
// Latency of an event = arrival time - the wall-clock nanoseconds the putter wrote in the
// first 8 bytes of the value (big-endian), in the histogram buckets of histogram.py.
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/bits"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"go.etcd.io/etcd/clientv3"
	"google.golang.org/grpc/metadata"
)

const (
	watchPrefix   = "w/"
	watchSentinel = "w/~end"
	linearBits    = 7
)

type spec struct {
	Endpoints    []string `json:"endpoints"`
	Conns        int      `json:"conns"`
	ConnOffset   int      `json:"conn_offset"`
	Watchers     int      `json:"watchers"`
	WatchStreams int      `json:"watch_streams"`
	DurationS    float64  `json:"duration_s"`
	DrainS       float64  `json:"drain_s"`
}

// histogram mirrors bench/load/histogram.py: 64 buckets per power of two above 128 us.
type histogram struct {
	counts map[int64]int64
	sumUs  int64
	maxUs  int64
}

func newHistogram() *histogram { return &histogram{counts: map[int64]int64{}} }

func bucketOf(us int64) int64 {
	if us < 1<<linearBits {
		if us < 0 {
			return 0
		}
		return us
	}
	shift := bits.Len64(uint64(us)) - linearBits
	return (us >> shift) << shift
}

func (h *histogram) record(us int64) {
	h.counts[bucketOf(us)]++
	h.sumUs += us
	if us > h.maxUs {
		h.maxUs = us
	}
}

func (h *histogram) merge(o *histogram) {
	for b, n := range o.counts {
		h.counts[b] += n
	}
	h.sumUs += o.sumUs
	if o.maxUs > h.maxUs {
		h.maxUs = o.maxUs
	}
}

func (h *histogram) toJSON() map[string]interface{} {
	counts := map[string]int64{}
	for b, n := range h.counts {
		counts[strconv.FormatInt(b, 10)] = n
	}
	return map[string]interface{}{"counts": counts, "sum_us": h.sumUs, "max_us": h.maxUs}
}

type watcherResult struct {
	hist     *histogram
	events   int64
	complete bool
	canceled bool
	err      string
}

func send(out *bufio.Writer, msg map[string]interface{}) {
	line, err := json.Marshal(msg)
	if err != nil {
		panic(err)
	}
	out.Write(line)
	out.WriteString("\n")
	out.Flush()
}

func fail(out *bufio.Writer, err error) {
	send(out, map[string]interface{}{"error": err.Error()})
	os.Exit(1)
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// watchOne receives until the sentinel arrives, the stream ends or ctx is done.
func watchOne(ctx context.Context, wch clientv3.WatchChan, res *watcherResult) {
	for {
		select {
		case <-ctx.Done():
			return
		case resp, ok := <-wch:
			if !ok {
				return
			}
			if resp.Canceled {
				res.canceled = true
				if err := resp.Err(); err != nil {
					res.err = err.Error()
				}
				return
			}
			arrived := time.Now().UnixNano()
			for _, ev := range resp.Events {
				if ev.Type != clientv3.EventTypePut {
					continue
				}
				if string(ev.Kv.Key) == watchSentinel {
					res.complete = true
					return
				}
				if len(ev.Kv.Value) < 8 {
					continue
				}
				sent := int64(binary.BigEndian.Uint64(ev.Kv.Value[:8]))
				res.hist.record((arrived - sent) / 1000)
				res.events++
			}
		}
	}
}

func main() {
	in := bufio.NewReader(os.Stdin)
	out := bufio.NewWriter(os.Stdout)
	readMsg := func(want string) json.RawMessage {
		line, err := in.ReadBytes('\n')
		if err != nil {
			fail(out, fmt.Errorf("driver closed stdin before %q", want))
		}
		var msg map[string]json.RawMessage
		if err := json.Unmarshal(line, &msg); err != nil {
			fail(out, err)
		}
		v, ok := msg[want]
		if !ok {
			fail(out, fmt.Errorf("expected %q from the driver", want))
		}
		return v
	}
	var sp spec
	if err := json.Unmarshal(readMsg("spec"), &sp); err != nil {
		fail(out, err)
	}
	conns := sp.Conns
	if conns < 1 {
		conns = 1
	}
	streams := sp.WatchStreams
	if streams < 1 {
		streams = 1
	}
	if streams > sp.Watchers && sp.Watchers > 0 {
		streams = sp.Watchers
	}
	clients := make([]*clientv3.Client, conns)
	for i := range clients {
		ep := sp.Endpoints[(sp.ConnOffset+i)%len(sp.Endpoints)]
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 20 * time.Second})
		if err != nil {
			fail(out, err)
		}
		defer c.Close()
		clients[i] = c
	}

	ctx, cancel := context.WithCancel(context.Background())
	results := make([]*watcherResult, sp.Watchers)
	chans := make([]clientv3.WatchChan, sp.Watchers)
	for i := 0; i < sp.Watchers; i++ {
		s := i % streams
		// clientv3 shares one gRPC stream between watches whose contexts carry equal
		// metadata: a stream number in the metadata gives `streams` separate streams.
		sctx := metadata.AppendToOutgoingContext(ctx, "kvbench-stream", strconv.Itoa(s))
		chans[i] = clients[s%conns].Watch(sctx, watchPrefix, clientv3.WithPrefix(), clientv3.WithCreatedNotify())
		results[i] = &watcherResult{hist: newHistogram()}
	}
	for i, wch := range chans {
		select {
		case resp, ok := <-wch:
			if !ok || !resp.Created {
				fail(out, fmt.Errorf("watch %d was not created: %v", i, resp.Err()))
			}
		case <-time.After(60 * time.Second):
			fail(out, fmt.Errorf("watch %d: no created response in 60 s", i))
		}
	}
	send(out, map[string]interface{}{"ready": true})

	var startAt float64
	if err := json.Unmarshal(readMsg("start_at"), &startAt); err != nil {
		fail(out, err)
	}
	if d := time.Until(time.Unix(0, int64(startAt*1e9))); d > 0 {
		time.Sleep(d)
	}
	started := time.Now()
	cpuStarted := cpuSeconds()
	limit := time.Duration((sp.DurationS + sp.DrainS) * float64(time.Second))
	drainCtx, drainCancel := context.WithTimeout(ctx, limit)
	var wg sync.WaitGroup
	for i := range chans {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			watchOne(drainCtx, chans[i], results[i])
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(started).Seconds()
	cpu := cpuSeconds() - cpuStarted
	drainCancel()
	cancel()

	total := newHistogram()
	var events, complete, canceled int64
	firstErr := ""
	for _, r := range results {
		total.merge(r.hist)
		events += r.events
		if r.complete {
			complete++
		}
		if r.canceled {
			canceled++
			if firstErr == "" {
				firstErr = r.err
			}
		}
	}
	errors := int64(0)
	if firstErr != "" {
		errors = 1
	}
	send(out, map[string]interface{}{
		"result": map[string]interface{}{
			"ops": events, "errors": errors, "hist": total.toJSON(), "sub": map[string]interface{}{},
			"counters": map[string]int64{
				"watchers": int64(sp.Watchers), "watch_streams": int64(streams),
				"complete_watchers": complete, "canceled": canceled,
			},
			"first_error": firstErr,
		},
		"elapsed_s": elapsed, "cpu_s": cpu,
	})
}
