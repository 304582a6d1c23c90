//go:build race

package main

// raceEnabled: the race detector's build allocates where the compiler
// otherwise does not (append of a make), so allocation counts hold only
// without it; scripts/test.sh runs those tests without -race too.
const raceEnabled = true
