// Package atomicfile replaces a file atomically and durably: a reader sees
// the old content or the new, never a part, and the new survives a crash
// once Write returns. Safe for concurrent use on different paths.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write replaces path with data (mode 0600): it writes and fsyncs a
// temporary file beside it, renames it over path, and fsyncs the
// directory. On failure path is unchanged and the temporary file is gone.
func Write(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err = f.Write(data); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
