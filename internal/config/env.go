package config

import (
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// EnvPrefix starts every variable that overrides a setting.
const EnvPrefix = "CITYSCREEN_"

// Environ returns the process's CITYSCREEN_* variables.
func Environ() map[string]string {
	env := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, EnvPrefix) {
			env[k] = v
		}
	}
	return env
}

// applyEnv sets every main-file setting named by a CITYSCREEN_SECTION_KEY
// variable, or read from the file named by CITYSCREEN_SECTION_KEY_FILE. It
// returns which dotted keys came from which variable, and the variables it
// could not use. Values are never quoted in problems: they may be secrets.
func applyEnv(cfg *Config, env map[string]string) (map[string]string, []Problem) {
	fromEnv := map[string]string{}
	var ps []Problem
	known := map[string]bool{EnvPrefix + "CONFIG": true, EnvPrefix + "CONFIG_FILE": true}
	root := reflect.ValueOf(cfg).Elem()
	for i := 0; i < root.NumField(); i++ {
		section := root.Type().Field(i).Tag.Get("yaml")
		if section == "" || section == "-" {
			continue
		}
		sv := root.Field(i)
		if sv.Kind() != reflect.Struct {
			continue // a list (privacy) is set in the file only
		}
		for j := 0; j < sv.NumField(); j++ {
			key := sv.Type().Field(j).Tag.Get("yaml")
			name := EnvPrefix + strings.ToUpper(section+"_"+key)
			known[name], known[name+"_FILE"] = true, true
			value, ok := env[name]
			source := name
			if file, fileOK := env[name+"_FILE"]; fileOK {
				if ok {
					ps = append(ps, Problem{File: name, Msg: fmt.Sprintf("give %s or %s_FILE, not both", name, name)})
					continue
				}
				data, err := os.ReadFile(file)
				if err != nil {
					ps = append(ps, Problem{File: name + "_FILE", Msg: err.Error()})
					continue
				}
				value, ok, source = strings.TrimRight(string(data), "\r\n"), true, name+"_FILE"
			}
			if !ok {
				continue
			}
			if err := setValue(sv.Field(j), value); err != nil {
				ps = append(ps, Problem{File: source, Msg: err.Error()})
				continue
			}
			fromEnv[section+"."+key] = source
		}
	}
	for _, name := range sortedKeys(env) {
		if !known[name] && !strings.HasPrefix(name, EnvPrefix+"TEST_") {
			ps = append(ps, Problem{File: name, Msg: "is not a cityscreen setting"})
		}
	}
	return fromEnv, ps
}

var durationType = reflect.TypeOf(time.Duration(0))

func setValue(v reflect.Value, s string) error {
	switch {
	case v.Type() == durationType:
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("want a duration like 10s or 5m")
		}
		v.SetInt(int64(d))
	case v.Kind() == reflect.String:
		v.SetString(s)
	case v.Kind() == reflect.Int || v.Kind() == reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("want an integer")
		}
		v.SetInt(n)
	case v.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("want true or false")
		}
		v.SetBool(b)
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
		var items []string
		for _, item := range strings.Split(s, ",") {
			if item = strings.TrimSpace(item); item != "" {
				items = append(items, item)
			}
		}
		v.Set(reflect.ValueOf(items))
	default:
		return fmt.Errorf("cannot be set from the environment")
	}
	return nil
}

func defaultClientID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "local"
	}
	return "cityscreen-" + strings.Map(func(r rune) rune {
		if r == '/' || r == '+' || r == '#' {
			return '-'
		}
		return r
	}, host)
}
