package wal

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cityscreen/cityscreen/internal/testkit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func open(t *testing.T, opts Options) *Log {
	t.Helper()
	l, err := Open(opts, quiet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// appendAll appends records concurrently and waits until all are durable.
func appendAll(t *testing.T, l *Log, prefix string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		l.Append([]byte(fmt.Sprintf("%s-%05d", prefix, i)), func(err error) {
			if err != nil {
				errs <- err
			}
			wg.Done()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func readAll(t *testing.T, l *Log, from Position) (map[string]bool, Position) {
	t.Helper()
	r := l.NewReader(from)
	defer r.Close()
	seen := map[string]bool{}
	var end Position
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		rec, err := r.Next(ctx)
		cancel()
		if err != nil {
			return seen, end
		}
		if seen[string(rec.Data)] {
			t.Fatalf("record %q read twice", rec.Data)
		}
		seen[string(rec.Data)] = true
		end = rec.End
	}
}

func TestAppendReadReopen(t *testing.T) {
	dir := t.TempDir()
	l := open(t, Options{Dir: dir, SegmentBytes: 4096})
	for i := 0; i < 10; i++ { // ten group commits at least
		appendAll(t, l, fmt.Sprintf("a%d", i), 100)
	}
	seen, _ := readAll(t, l, Position{})
	if len(seen) != 1000 || !seen["a0-00000"] || !seen["a9-00099"] {
		t.Fatalf("read %d records", len(seen))
	}
	if st := l.Stats(); st.Segments < 5 {
		t.Fatalf("%d segments of 4 KiB for ~26 KB in ten commits", st.Segments)
	}
	l.Close()

	l = open(t, Options{Dir: dir, SegmentBytes: 4096})
	appendAll(t, l, "b", 10)
	seen, _ = readAll(t, l, Position{})
	if len(seen) != 1010 || !seen["b-00009"] {
		t.Fatalf("after reopening, read %d records", len(seen))
	}
}

func TestTornTailIsCut(t *testing.T) {
	for name, damage := range map[string]func(path string, size int64){
		"half a record": func(path string, size int64) { os.Truncate(path, size-3) },
		"garbage after": func(path string, size int64) {
			f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			f.Write([]byte{9, 0, 0, 0, 1, 2, 3})
			f.Close()
		},
		"flipped byte": func(path string, size int64) {
			f, _ := os.OpenFile(path, os.O_RDWR, 0)
			f.WriteAt([]byte{'#'}, size-2)
			f.Close()
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			l := open(t, Options{Dir: dir})
			appendAll(t, l, "r", 50)
			l.Close()
			path := filepath.Join(dir, fmt.Sprintf("%020d.wal", 1))
			info, _ := os.Stat(path)
			damage(path, info.Size())

			l = open(t, Options{Dir: dir})
			seen, _ := readAll(t, l, Position{})
			want := 50
			if name != "garbage after" {
				want = 49 // the damaged last record
			}
			if len(seen) != want {
				t.Fatalf("read %d records, want %d", len(seen), want)
			}
			if l.Stats().TornBytes == 0 {
				t.Fatal("no torn bytes reported")
			}
			appendAll(t, l, "s", 5)
			seen, _ = readAll(t, l, Position{})
			if len(seen) != want+5 {
				t.Fatalf("after new appends, read %d", len(seen))
			}
		})
	}
}

func TestTrimAndReaderAcrossSegments(t *testing.T) {
	l := open(t, Options{Dir: t.TempDir(), SegmentBytes: 1024})
	for i := 0; i < 10; i++ {
		appendAll(t, l, fmt.Sprintf("x%d", i), 30)
	}
	seen, end := readAll(t, l, Position{})
	if len(seen) != 300 {
		t.Fatalf("read %d", len(seen))
	}
	before := l.Stats().Segments
	if err := l.Trim(end); err != nil {
		t.Fatal(err)
	}
	st := l.Stats()
	if before < 5 || st.Segments != 1 { // only the active segment stays
		t.Fatalf("after trimming to the end: %+v (had %d segments)", st, before)
	}
	// A reader from the end sees only what comes next.
	r := l.NewReader(end)
	defer r.Close()
	appendAll(t, l, "y", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rec, err := r.Next(ctx)
	if err != nil || string(rec.Data) != "y-00000" {
		t.Fatalf("next = %q, %v", rec.Data, err)
	}
}

// TestFullLogWaits: at its limit the log holds appends (nothing is
// acknowledged) until the forwarder trims.
func TestFullLogWaits(t *testing.T) {
	l := open(t, Options{Dir: t.TempDir(), SegmentBytes: 256, MaxBytes: 1024})
	for i := 0; i < 4; i++ {
		appendAll(t, l, fmt.Sprintf("f%d", i), 8) // 8 x 24 bytes a commit
	}
	var durable sync.WaitGroup
	durable.Add(1)
	var doneAt time.Time
	l.Append(make([]byte, 300), func(err error) { // 768 + 316 bytes > 1024
		if err != nil {
			t.Error(err)
		}
		doneAt = time.Now()
		durable.Done()
	})
	testkit.WaitFor(t, 5*time.Second, func() bool { return l.Stats().Full })
	time.Sleep(50 * time.Millisecond)
	trimmedAt := time.Now()
	_, end := readAll(t, l, Position{})
	if err := l.Trim(end); err != nil {
		t.Fatal(err)
	}
	durable.Wait()
	if doneAt.Before(trimmedAt) {
		t.Fatal("an append was made durable while the log was full")
	}
	if l.Stats().Full {
		t.Fatal("still full after trimming")
	}
}

func TestCloseFinishesQueuedAppends(t *testing.T) {
	l := open(t, Options{Dir: t.TempDir()})
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(1)
		l.Append([]byte("x"), func(err error) { wg.Done() })
	}
	l.Close()
	wg.Wait()
	l.Append([]byte("late"), func(err error) {
		if err != ErrClosed {
			t.Errorf("append after close: %v", err)
		}
	})
}

func BenchmarkAppendFsync(b *testing.B) {
	l, err := Open(Options{Dir: b.TempDir()}, quiet())
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	rec := make([]byte, 200) // a typical reading as line protocol
	b.ReportAllocs()
	b.SetBytes(int64(len(rec)))
	var wg sync.WaitGroup
	for b.Loop() {
		wg.Add(1)
		l.Append(rec, func(error) { wg.Done() })
	}
	wg.Wait()
}

// TestAppendRacingClose: appends that race Close either become durable or
// fail with ErrClosed; none is lost and none panics.
func TestAppendRacingClose(t *testing.T) {
	l := open(t, Options{Dir: t.TempDir()})
	var wg sync.WaitGroup
	var settled sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				settled.Add(1)
				l.Append([]byte("r"), func(err error) {
					if err != nil && err != ErrClosed {
						t.Error(err)
					}
					settled.Done()
				})
			}
		}()
	}
	time.Sleep(time.Millisecond)
	l.Close()
	wg.Wait()
	settled.Wait()
}

// A broker's window of unacknowledged messages bounds how many records can
// arrive before a commit: once that many have come, the commit must not wait
// out its interval for more. Each round here appends a window of 20 and
// waits for them, with an interval of 10 s.
func TestCommitDoesNotWaitForRecordsThatCannotCome(t *testing.T) {
	var commits atomic.Int32
	l := open(t, Options{Dir: t.TempDir(), CommitInterval: 10 * time.Second, OnCommit: func(int, time.Duration) { commits.Add(1) }})
	errs := make(chan error, 1)
	go func() {
		for round := 0; round < 20; round++ {
			var wg sync.WaitGroup
			var failed atomic.Pointer[error]
			for i := 0; i < 20; i++ {
				wg.Add(1)
				l.Append([]byte(fmt.Sprintf("round%02d-%02d", round, i)), func(err error) {
					if err != nil {
						failed.Store(&err)
					}
					wg.Done()
				})
			}
			wg.Wait()
			if err := failed.Load(); err != nil {
				errs <- *err
				return
			}
		}
		errs <- nil
	}()
	select {
	case err := <-errs:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatalf("20 rounds of 20 records not durable within a minute: a commit waited for its interval (10 s); %d commits", commits.Load())
	}
	seen, _ := readAll(t, l, Position{})
	if len(seen) != 400 {
		t.Fatalf("read %d records, want 400", len(seen))
	}
}
