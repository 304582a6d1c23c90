package feed

import (
	"encoding/json"
	"fmt"
	"sort"
)

// Languages the pages speak. A Text's per-language form uses these keys.
var Languages = []string{"zh", "en"}

// Text is words shown to people: a plain string, the same in every
// language, or one string per language, {zh: 道里区, en: Daoli}. It reads
// either form from YAML and JSON and writes back the form it was given.
type Text struct {
	// Plain is the text for every language; empty when ByLang is set.
	Plain string
	// ByLang is the text by language (zh, en); nil for a plain text.
	ByLang map[string]string
}

// PlainText is a Text that is the same in every language.
func PlainText(s string) Text { return Text{Plain: s} }

// IsZero reports whether the text is empty in every language.
func (t Text) IsZero() bool { return t.Plain == "" && len(t.ByLang) == 0 }

// String is the text for logs, alerts and API answers that carry one
// string: the plain text, else the Chinese, else the English.
func (t Text) String() string {
	if t.Plain != "" || len(t.ByLang) == 0 {
		return t.Plain
	}
	for _, l := range Languages {
		if s := t.ByLang[l]; s != "" {
			return s
		}
	}
	return ""
}

// In is the text in a language, falling back to String.
func (t Text) In(lang string) string {
	if s := t.ByLang[lang]; s != "" {
		return s
	}
	return t.String()
}

// Langs is the per-language form for the pages: every language filled in
// (falling back as In does), or nil for a plain text.
func (t Text) Langs() map[string]string {
	if len(t.ByLang) == 0 {
		return nil
	}
	out := make(map[string]string, len(Languages))
	for _, l := range Languages {
		out[l] = t.In(l)
	}
	return out
}

// Problems lists what is wrong with the text: a language cityscreen does
// not speak, or an empty entry.
func (t Text) Problems() []string {
	var ps []string
	keys := make([]string, 0, len(t.ByLang))
	for k := range t.ByLang {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch {
		case k != "zh" && k != "en":
			ps = append(ps, fmt.Sprintf("language %q: want zh or en", k))
		case t.ByLang[k] == "":
			ps = append(ps, fmt.Sprintf("%s is empty", k))
		}
	}
	return ps
}

// UnmarshalYAML reads a string or a map of language to string. (yaml.v3
// calls this form too; feed does not import the YAML package.)
func (t *Text) UnmarshalYAML(unmarshal func(any) error) error {
	var s string
	if err := unmarshal(&s); err == nil {
		*t = Text{Plain: s}
		return nil
	}
	var m map[string]string
	if err := unmarshal(&m); err != nil {
		return fmt.Errorf("want a text, or one per language ({zh: …, en: …})")
	}
	*t = Text{ByLang: m}
	return nil
}

// MarshalYAML writes the form the text was given in.
func (t Text) MarshalYAML() (any, error) {
	if len(t.ByLang) > 0 {
		return t.ByLang, nil
	}
	return t.Plain, nil
}

// UnmarshalJSON reads a string or an object of language to string.
func (t *Text) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*t = Text{Plain: s}
		return nil
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("want a text, or one per language ({\"zh\": …, \"en\": …})")
	}
	*t = Text{ByLang: m}
	return nil
}

// MarshalJSON writes the form the text was given in.
func (t Text) MarshalJSON() ([]byte, error) {
	if len(t.ByLang) > 0 {
		return json.Marshal(t.ByLang)
	}
	return json.Marshal(t.Plain)
}

// Labels name tag values in people's words, by tag then value:
// {district: {daoli: {zh: 道里区, en: Daoli}}}.
type Labels map[string]map[string]Text

// Problems lists what is wrong with the labels, each with its key below
// the labels' own.
func (ls Labels) Problems() []Problem {
	var ps []Problem
	for tag, values := range ls {
		if !ValidName(tag) {
			ps = append(ps, Problem{Key: tag, Msg: fmt.Sprintf("%q is not a tag name", tag)})
		}
		for v, t := range values {
			for _, m := range t.Problems() {
				ps = append(ps, Problem{Key: tag + "." + v, Msg: m})
			}
		}
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].Key < ps[j].Key })
	return ps
}

// Merge is ls with more's labels added, more's winning where both name a
// value.
func (ls Labels) Merge(more Labels) Labels {
	if len(more) == 0 {
		return ls
	}
	out := Labels{}
	for _, src := range []Labels{ls, more} {
		for tag, values := range src {
			if out[tag] == nil {
				out[tag] = map[string]Text{}
			}
			for v, t := range values {
				out[tag][v] = t
			}
		}
	}
	return out
}
