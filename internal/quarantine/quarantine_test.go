package quarantine

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/cityscreen/cityscreen/internal/wal"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestEntriesAreDurableAndBounded(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	q, err := Open(dir, 8192, log, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Refused(`m f="x" 1`, "field type conflict"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 200; i++ {
		errc := make(chan error, 1)
		q.Add(Entry{Kind: KindRejected, Feed: "air", Topic: "a/b", Reason: "payload is not valid JSON", Payload: []byte{0xff, '{'}}, func(err error) { errc <- err })
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	if testutil.ToFloat64(q.dropped) == 0 {
		t.Fatal("200 entries in 8 KiB dropped nothing")
	}
	if b := q.wal.Stats().Bytes; b > 8192 {
		t.Fatalf("quarantine holds %d bytes, over its limit", b)
	}
	q.Close()

	// What is left reads back whole after a restart.
	w, err := wal.Open(wal.Options{Dir: dir}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	r := w.NewReader(wal.Position{})
	defer r.Close()
	n := 0
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		rec, err := r.Next(ctx)
		cancel()
		if err != nil {
			break
		}
		var e Entry
		if err := json.Unmarshal(rec.Data, &e); err != nil {
			t.Fatal(err)
		}
		if e.Kind == KindRejected && (e.Payload[0] != 0xff || e.Feed != "air") {
			t.Fatalf("entry = %+v", e)
		}
		n++
	}
	if n == 0 || n >= 201 {
		t.Fatalf("read %d entries back", n)
	}
}
