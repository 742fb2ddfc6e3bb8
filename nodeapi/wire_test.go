package nodeapi

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kvnode/kvnode/clusterversion"
	"github.com/kvnode/kvnode/rpc"
)

var updateWire = flag.Bool("update-wire", false,
	"write testdata/wire/<this release>/ from the current types; refused if a field of the existing fixtures would change or go")

// TestWireCompatibility checks that every message of every release in
// testdata/wire/ decodes into the current types and encodes back to the
// same JSON (the current types may add fields, never rename, retype or
// remove one), and that the fixtures of this binary's release are what
// the current types encode. Together: a node of release R understands
// R+1's messages (JSON ignores the fields R does not know; every field R
// knows is still there with its meaning), and R+1 understands R's.
//
// When you add a field, run `go test ./nodeapi -run TestWireCompatibility
// -update-wire`. When a release is cut, copy its directory under the
// release's name.
func TestWireCompatibility(t *testing.T) {
	cur := clusterversion.Latest.Version().String()
	curDir := filepath.Join("testdata", "wire", cur)
	if *updateWire {
		writeFixtures(t, curDir)
	}
	releases, err := os.ReadDir(filepath.Join("testdata", "wire"))
	if err != nil {
		t.Fatal(err)
	}
	sawCur := false
	for _, rel := range releases {
		sawCur = sawCur || rel.Name() == cur
		t.Run(rel.Name(), func(t *testing.T) {
			dir := filepath.Join("testdata", "wire", rel.Name())
			for _, m := range methods {
				for _, side := range []struct {
					suffix string
					newMsg func() any
				}{{"request", m.newRequest}, {"response", m.newResponse}} {
					name := fmt.Sprintf("%s.%s.json", m.name, side.suffix)
					old, err := os.ReadFile(filepath.Join(dir, name))
					if os.IsNotExist(err) {
						// A method added after this release: nothing of
						// it to decode (its callers must handle
						// Unimplemented from a node of that release).
						continue
					} else if err != nil {
						t.Fatal(err)
					}
					if err := checkCompatible(old, side.newMsg()); err != nil {
						t.Errorf("%s/%s: %v", rel.Name(), name, err)
					}
					if rel.Name() == cur {
						want, _ := encode(t, filled(side.newMsg()))
						if !bytes.Equal(old, want) {
							t.Errorf("%s/%s is not what the current types encode; run with -update-wire (got\n%s\nwant\n%s)", rel.Name(), name, old, want)
						}
					}
				}
			}
		})
	}
	if !sawCur {
		t.Errorf("no fixtures for this release (%s): run with -update-wire", cur)
	}
}

// TestWireNamesStable pins the method names: they are part of the wire.
func TestWireNamesStable(t *testing.T) {
	var names []string
	for _, m := range methods {
		names = append(names, m.name)
	}
	want := "Hello Init Join SchemaPush SchemaPull NodeStatus Drain Decommission Recommission GetLiveness " +
		"SetClusterVersion Group0State Group0Prepare Group0Join Group0SetState Group0Sync Group0Recover " +
		"Recover RecoverInfo RecoverApply Clock PurgeRaftLog"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("methods of kvnode.Node changed:\n got %s\nwant %s\n(a method is never renamed or removed)", got, want)
	}
	if ServiceDesc.ServiceName != "kvnode.Node" || len(ServiceDesc.Methods) != len(methods) {
		t.Errorf("service %s with %d methods", ServiceDesc.ServiceName, len(ServiceDesc.Methods))
	}
}

// checkCompatible decodes old into msg with the codec's own decoder but
// no unknown field allowed (a field of old that msg lacks was renamed or
// removed), encodes msg again and requires every value of old to be there
// unchanged.
func checkCompatible(old []byte, msg any) error {
	dec := json.NewDecoder(bytes.NewReader(old))
	dec.DisallowUnknownFields()
	if err := dec.Decode(msg); err != nil {
		return fmt.Errorf("does not decode into %T (a field renamed, retyped or removed?): %v", msg, err)
	}
	again, err := rpc.Codec{}.Marshal(msg)
	if err != nil {
		return err
	}
	var o, n any
	if err := json.Unmarshal(old, &o); err != nil {
		return err
	}
	if err := json.Unmarshal(again, &n); err != nil {
		return err
	}
	return subset("", o, n)
}

// subset reports the first value of old that is missing or different in
// cur; objects of cur may have more keys.
func subset(path string, old, cur any) error {
	switch o := old.(type) {
	case map[string]any:
		c, ok := cur.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: was an object, now %v", path, cur)
		}
		keys := make([]string, 0, len(o))
		for k := range o {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			cv, ok := c[k]
			if !ok {
				return fmt.Errorf("%s.%s: no longer encoded", path, k)
			}
			if err := subset(path+"."+k, o[k], cv); err != nil {
				return err
			}
		}
		return nil
	case []any:
		c, ok := cur.([]any)
		if !ok || len(c) != len(o) {
			return fmt.Errorf("%s: was %v, now %v", path, old, cur)
		}
		for i := range o {
			if err := subset(fmt.Sprintf("%s[%d]", path, i), o[i], c[i]); err != nil {
				return err
			}
		}
		return nil
	default:
		if !reflect.DeepEqual(old, cur) {
			return fmt.Errorf("%s: was %v, now %v", path, old, cur)
		}
		return nil
	}
}

// writeFixtures writes every message, filled, to dir, refusing a change
// that is not an addition.
func writeFixtures(t *testing.T, dir string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, m := range methods {
		for suffix, newMsg := range map[string]func() any{"request": m.newRequest, "response": m.newResponse} {
			path := filepath.Join(dir, fmt.Sprintf("%s.%s.json", m.name, suffix))
			if old, err := os.ReadFile(path); err == nil {
				if err := checkCompatible(old, newMsg()); err != nil {
					t.Fatalf("refusing to rewrite %s: %v", path, err)
				}
			}
			b, _ := encode(t, filled(newMsg()))
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// encode is the codec's encoding, indented for review.
func encode(t *testing.T, msg any) ([]byte, error) {
	b, err := rpc.Codec{}.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		t.Fatal(err)
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// filled returns msg with every field set to a deterministic non-zero
// value (so omitempty fields appear in the fixtures too).
func filled(msg any) any {
	fill(reflect.ValueOf(msg).Elem(), "x")
	return msg
}

// filling holds the pointed-to types being filled: a pointer back to one of
// them (a descriptor's Next) is left nil, so that fill ends.
var filling = map[reflect.Type]bool{}

var timeType = reflect.TypeOf(time.Time{})

func fill(v reflect.Value, name string) {
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == timeType {
			v.Set(reflect.ValueOf(time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)))
			return
		}
		for i := 0; i < v.NumField(); i++ {
			if f := v.Type().Field(i); f.IsExported() {
				fill(v.Field(i), f.Name)
			}
		}
	case reflect.Pointer:
		if filling[v.Type().Elem()] {
			return
		}
		filling[v.Type().Elem()] = true
		defer delete(filling, v.Type().Elem())
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), name)
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			v.SetBytes([]byte(name))
			return
		}
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0), name)
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k, name+"_key")
		fill(e, name)
		v.SetMapIndex(k, e)
	case reflect.String:
		v.SetString(strings.ToLower(name))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(1 + len(name)%7))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(1 + len(name)%7))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(1.5)
	}
}
