package app

import (
	"context"
	"errors"
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

// TestStagesStopInReverse checks that stages stop in the reverse of their
// start, stages New opened (no start) included, and that a start that
// fails stops only the stages before it.
func TestStagesStopInReverse(t *testing.T) {
	var got []string
	rec := func(name string) stage {
		return stage{name: name,
			start: func(context.Context) error { got = append(got, "start "+name); return nil },
			stop:  func(context.Context) { got = append(got, "stop "+name) }}
	}
	opened := stage{name: "opened", stop: func(context.Context) { got = append(got, "stop opened") }}
	started, err := startStages(t.Context(), []stage{rec("a"), opened, rec("b")}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	stopStages(t.Context(), started)
	want := []string{"start a", "start b", "stop b", "stop opened", "stop a"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}

	got = nil
	failing := stage{name: "failing", start: func(context.Context) error { return errors.New("port in use") },
		stop: func(context.Context) { got = append(got, "stop failing") }}
	_, err = startStages(t.Context(), []stage{rec("a"), opened, failing, rec("b")}, time.Second)
	if err == nil || err.Error() != "failing: port in use" {
		t.Fatalf("err = %v, want the failing stage named", err)
	}
	want = []string{"start a", "stop opened", "stop a"}
	if !slices.Equal(got, want) {
		t.Fatalf("after a failed start got %q, want %q", got, want)
	}
}

// TestGoStageOutlivesRunContext checks that a goroutine stage runs until
// its own stop, not until the context it was started with ends: the
// stages after it must be able to stop while it still runs.
func TestGoStageOutlivesRunContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ended := false
		s := goStage("loop", func(ctx context.Context) {
			<-ctx.Done()
			ended = true
		})
		ctx, cancel := context.WithCancel(context.Background())
		if err := s.start(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		synctest.Wait() // the stage's goroutine is blocked or done
		if ended {
			t.Fatal("the stage ended with the context it was started with")
		}
		s.stop(context.Background())
		if !ended {
			t.Fatal("stop returned before the stage's goroutine did")
		}
	})
}
