// Package dashboard holds the static pages the server serves: the wall
// screen, the mobile summary and the feeds page, with their vendored
// charting library (copied from npm by `make assets`).
package dashboard

import (
	"embed"
	"io/fs"
)

//go:embed static
var files embed.FS

// FS is the dashboard's files, rooted at static/.
func FS() fs.FS {
	sub, err := fs.Sub(files, "static")
	if err != nil {
		panic(err) // static/ is embedded at build time
	}
	return sub
}
