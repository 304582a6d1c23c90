package main

import (
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/cityscreen/cityscreen/internal/config"
	"github.com/cityscreen/cityscreen/internal/feed"
)

// TestStreamsDecode: each stream's files load as cityscreen loads them, and
// every kind of reading it publishes decodes into its feed without a
// rejection, with the seq and sent fields citybench counts and measures by:
// a stream that disagreed with its own feeds would show as readings lost.
func TestStreamsDecode(t *testing.T) {
	for name, st := range streams {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := st.writeFiles(dir, "42"); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(filepath.Join(dir, "cityscreen.yaml"), map[string]string{"CITYSCREEN_STATE_DIR": filepath.Join(dir, "state")})
			if err != nil {
				t.Fatal(err)
			}
			if len(cfg.Screens) != 1 || len(cfg.Screens[0].Panels) == 0 {
				t.Fatalf("screens = %+v", cfg.Screens)
			}
			var feeds []*feed.Feed
			for _, spec := range cfg.Feeds {
				f, err := feed.New(spec, feed.Options{})
				if err != nil {
					t.Fatal(err)
				}
				feeds = append(feeds, f)
			}
			decoded := map[string]int{}
			for n := int64(1); n <= 60; n++ {
				topic := st.topic("42", n, int(n%4))
				now := time.Unix(1795600000, n)
				var matched *feed.Feed
				for _, f := range feeds {
					if f.Matches(topic) {
						matched = f
					}
				}
				if matched == nil {
					t.Fatalf("reading %d: no feed takes topic %s", n, topic)
				}
				payload := st.payload(nil, n, now)
				points, err := matched.Decode(topic, payload, now)
				if err != nil {
					t.Fatalf("reading %d on %s: %v\n%s", n, topic, err, payload)
				}
				seq, sent := false, false
				for _, f := range points[0].Fields {
					switch f.Key {
					case "seq":
						seq = f.Value.IntV() == n
					case "sent":
						sent = math.Abs(f.Value.FloatV()-float64(now.UnixNano())/1e6) < 0.001
					}
				}
				if !seq || !sent || !points[0].Time.Equal(now) {
					t.Fatalf("reading %d: seq %v, sent %v, time %v in %+v", n, seq, sent, points[0].Time, points[0])
				}
				decoded[matched.ID()]++
			}
			if len(decoded) != len(feeds) {
				t.Fatalf("readings per feed = %v: every feed should have some", decoded)
			}
		})
	}
}
