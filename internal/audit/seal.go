package audit

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cityscreen/cityscreen/internal/atomicfile"
)

// MinKey is the shortest audit key accepted, in bytes.
const MinKey = 32

// head is the newest record's sequence and hash, kept beside the log in
// path.head and signed: removing the newest records, or emptying or
// deleting the log, leaves a log that does not reach it.
type head struct {
	Seq  uint64    `json:"seq"`
	Hash string    `json:"hash"`
	Time time.Time `json:"time"`
	MAC  string    `json:"mac,omitempty"`
}

func (h head) mac(key []byte) string {
	return sign(key, fmt.Sprintf("cityscreen audit head\n%d\n%s", h.Seq, h.Hash))
}

// anchor is where the chain starts once retention removed its oldest
// records: the last removed record's sequence and hash, signed, so that
// an anchor written by hand is refused.
type anchor struct {
	Seq     uint64    `json:"seq"`
	Hash    string    `json:"hash"`
	Trimmed time.Time `json:"trimmed"`
	MAC     string    `json:"mac,omitempty"`
}

func (a anchor) mac(key []byte) string {
	return sign(key, fmt.Sprintf("cityscreen audit anchor\n%d\n%s", a.Seq, a.Hash))
}

// sign is the hex HMAC-SHA256 of msg, or "" without a key.
func sign(key []byte, msg string) string {
	if len(key) == 0 {
		return ""
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return hex.EncodeToString(m.Sum(nil))
}

// signed reports whether mac is msg's signature under key.
func signed(key []byte, mac, want string) bool {
	got, err := hex.DecodeString(mac)
	w, _ := hex.DecodeString(want)
	return err == nil && len(key) > 0 && hmac.Equal(got, w)
}

func headPath(path string) string   { return path + ".head" }
func anchorPath(path string) string { return path + ".anchor" }

func writeHead(path string, key []byte, h head) error {
	h.MAC = h.mac(key)
	b, _ := json.Marshal(h)
	return atomicfile.Write(headPath(path), b)
}

func writeAnchor(path string, key []byte, a anchor) error {
	a.MAC = a.mac(key)
	b, _ := json.Marshal(a)
	return atomicfile.Write(anchorPath(path), b)
}

// readJSON reads a head or an anchor; ok is false when there is none.
func readJSON(path string, v any) (ok bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return true, fmt.Errorf("%s is not what cityscreen writes: %v", path, err)
	}
	return true, nil
}
