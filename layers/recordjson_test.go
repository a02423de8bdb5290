package layers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
)

// referenceMarshal is how a record was encoded before the one-pass writer:
// encoding/json for the known fields, then the unknown ones sorted.
func referenceMarshal(l *Layer) ([]byte, error) {
	known, err := json.Marshal(layerFields(*l))
	if err != nil {
		return nil, err
	}
	if len(l.extra) == 0 {
		return known, nil
	}
	names := make([]string, 0, len(l.extra))
	for name := range l.extra {
		names = append(names, name)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	buf.Write(known[:len(known)-1])
	for _, name := range names {
		key, err := json.Marshal(name)
		if err != nil {
			return nil, err
		}
		buf.WriteByte(',')
		buf.Write(key)
		buf.WriteByte(':')
		buf.Write(l.extra[name])
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// referenceRecord encodes through referenceMarshal inside encoding/json,
// which compacts and HTML-escapes a marshaler's output.
type referenceRecord struct{ l *Layer }

func (r referenceRecord) MarshalJSON() ([]byte, error) { return referenceMarshal(r.l) }

// referenceEncode is layers.json as the former save wrote it.
func referenceEncode(records []*Layer) ([]byte, error) {
	refs := make([]referenceRecord, len(records))
	for i, l := range records {
		refs[i] = referenceRecord{l}
	}
	return json.Marshal(refs)
}

// referenceDecode is layers.json as the former load read it.
func referenceDecode(data []byte) ([]*Layer, error) {
	var records []*Layer
	err := json.Unmarshal(data, &records)
	return records, err
}

// withoutCache copies records without their cached encodings, for
// comparing.
func withoutCache(records []*Layer) []*Layer {
	if records == nil {
		return nil
	}
	out := make([]*Layer, len(records))
	for i, l := range records {
		if l != nil {
			c := *l
			c.enc, c.encodedFrom = nil, nil
			out[i] = &c
		}
	}
	return out
}

// compareWithReference loads data with decodeRecords and with plain
// encoding/json and fails unless both agree (both fail, or both give the
// same records), and, when they load, unless both encoders write the same
// bytes.
func compareWithReference(t *testing.T, data []byte) {
	t.Helper()
	got, err := decodeRecords(data)
	want, wantErr := referenceDecode(data)
	if (err == nil) != (wantErr == nil) {
		t.Fatalf("decodeRecords error %v, encoding/json error %v", err, wantErr)
	}
	if err != nil {
		return
	}
	if !reflect.DeepEqual(withoutCache(got), want) {
		t.Fatalf("decodeRecords and encoding/json differ:\n got %#v\nwant %#v", derefs(got), derefs(want))
	}
	for _, l := range got {
		if l == nil {
			return // load rejects the file; the writers never see it
		}
	}
	// Saved as loaded, records keep their bytes from the file: what is
	// written must read back as the same records.
	saved, err := encodeRecords(got)
	if err != nil {
		t.Fatalf("encodeRecords of records as loaded: %v", err)
	}
	again, err := referenceDecode(saved)
	if err != nil {
		t.Fatalf("records saved as loaded do not read back: %v\n%s", err, saved)
	}
	if len(again) > 0 || len(want) > 0 {
		// Compared as encoding/json writes them: unknown fields are kept
		// as raw bytes, which the first save may have compacted.
		gotJSON, err1 := referenceEncode(again)
		wantJSON, err2 := referenceEncode(want)
		if err2 == nil && (err1 != nil || !bytes.Equal(gotJSON, wantJSON)) {
			t.Fatalf("records saved as loaded read back differently:\n%s\nwant\n%s", gotJSON, wantJSON)
		}
	}
	// Encoded afresh, they are what encoding/json writes.
	enc, err := encodeRecords(withoutCache(got))
	wantEnc, wantEncErr := referenceEncode(want)
	if (err == nil) != (wantEncErr == nil) {
		t.Fatalf("encodeRecords error %v, reference error %v", err, wantEncErr)
	}
	if err == nil && !bytes.Equal(enc, wantEnc) {
		t.Fatalf("encodeRecords wrote\n%s\nencoding/json wrote\n%s", enc, wantEnc)
	}
}

func derefs(records []*Layer) []any {
	out := make([]any, len(records))
	for i, l := range records {
		if l != nil {
			out[i] = *l
		}
	}
	return out
}

// recordCorpus is layers.json content of the shapes other programs and
// damaged files produce; fast names the ones the one-pass reader must read
// without falling back to encoding/json for the whole file.
func recordCorpus(t testing.TB) []struct {
	name string
	data string
	fast bool
} {
	t.Helper()
	id := strings.Repeat("a", 64)
	created := time.Date(2024, 1, 2, 3, 4, 5, 123456789, time.FixedZone("x", 3600))
	full := map[string]any{
		"id": id, "names": []string{"n1", "ü<&>\u2028"}, "parent": "p", "metadata": "m\"\\\n\t",
		"mountlabel": "system_u:object_r:container_file_t:s0", "created": created,
		"compressed-diff-digest": digest.FromString("c"), "compressed-size": 1 << 40,
		"diff-digest": digest.FromString("u"), "diff-size": 12345, "toc-digest": digest.FromString("t"),
		"compression": 2, "uidset": []uint32{0, 4294967295}, "gidset": []uint32{},
		"flags": map[string]any{"read-only": true, "incomplete": false, "n": 1.5e300,
			"s": "x", "nested": map[string]any{"a": []any{1, "b", nil}}, "nil": nil},
		"uidmap": []IDMap{{0, 100000, 65536}}, "gidmap": []IDMap{{1, 2, 3}, {4, 5, 6}},
		"big-data-names":   []string{"b"},
		"big-data-digests": map[string]string{"b": "sha256:00"},
		"future":           []any{1, "two", map[string]any{"x <y>": nil}},
	}
	written, err := json.Marshal([]any{full})
	if err != nil {
		t.Fatal(err)
	}
	indented, err := json.MarshalIndent([]any{full}, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	plain := `{"id":"` + id + `","created":"2024-01-02T03:04:05Z","compression":2,"uidset":[0],` +
		`"flags":{"read-only":true}}`
	return []struct {
		name string
		data string
		fast bool
	}{
		{"empty array", `[]`, true},
		{"plain", "[" + plain + "," + plain[:8] + "b" + plain[9:] + "]", true},
		{"written by encoding/json", string(written), true},
		{"indented", string(indented), true},
		{"white space everywhere", " \n[ {\t\"id\" : \"a\" ,\"names\":[ \"x\" , \"y\" ] , \"flags\" : { } } ] \r\n", true},
		{"escapes in values", `[{"id":"a","names":["\u00fc\n\"","\/"],"metadata":"\ud83d\ude00","parent":"\u0062"}]`, true},
		{"escape in unknown key", `[{"id":"a","fu\u0074ure":1}]`, true},
		{"escape in flag key", `[{"id":"a","flags":{"read-\u006fnly":true}}]`, true},
		{"unicode", `[{"id":"a","names":["日本語","ü"],"ünknown":"é"}]`, true},
		{"invalid UTF-8", "[{\"id\":\"a\",\"names\":[\"\xff\xfe\"],\"x\xff\":\"\xc3\"}]", true},
		{"nulls", `[{"id":"a","names":null,"parent":null,"created":null,"compression":null,"uidset":null,` +
			`"flags":null,"uidmap":null,"diff-size":null,"future":null}]`, true},
		{"null elements", `[{"id":"a","names":[null],"uidmap":[null],"flags":{"x":null}}]`, true},
		{"empty containers", `[{"id":"a","names":[],"uidset":[],"flags":{},"uidmap":[{}],"big-data-names":[]}]`, true},
		{"float size", `[{"id":"a","diff-size":1e3}]`, true},
		{"fraction size", `[{"id":"a","compressed-size":1.0}]`, true},
		{"negative size", `[{"id":"a","diff-size":-1,"compression":-0}]`, true},
		{"size overflow", `[{"id":"a","diff-size":99999999999999999999}]`, true},
		{"uid overflow", `[{"id":"a","uidset":[4294967296]}]`, true},
		{"negative uid", `[{"id":"a","uidset":[-1]}]`, true},
		{"flag numbers", `[{"id":"a","flags":{"a":1e3,"b":-0.5,"c":1E+2,"d":1e999}}]`, true},
		{"string where number", `[{"id":"a","diff-size":"12"}]`, true},
		{"number where string", `[{"id":12}]`, true},
		{"object where array", `[{"id":"a","names":{"x":1}}]`, true},
		{"array where object", `[{"id":"a","flags":[true]}]`, true},
		{"key in other case", `[{"ID":"a","Names":["x"]}]`, true},
		{"key folding to known", "[{\"id\":\"a\",\"\u017fize\":1,\"diff-\u017fize\":2}]", true},
		{"duplicate key", `[{"id":"a","id":"b","names":["x"],"names":null}]`, true},
		{"duplicate unknown key", `[{"id":"a","x":1,"x":2}]`, true},
		{"duplicate flag", `[{"id":"a","flags":{"read-only":true,"read-only":false}}]`, true},
		{"idmap unknown key", `[{"id":"a","uidmap":[{"container_id":1,"extra":2,"Size":3}]}]`, true},
		{"idmap float", `[{"id":"a","gidmap":[{"host_id":1.5}]}]`, true},
		{"created with offset", `[{"id":"a","created":"2024-01-02T03:04:05.5+01:30"}]`, true},
		{"created bad", `[{"id":"a","created":"yesterday"}]`, true},
		{"created number", `[{"id":"a","created":17}]`, true},
		{"created escaped", `[{"id":"a","created":"2024-01-02T03:04:05\u005a"}]`, true},
		{"created year 0", `[{"id":"a","created":"0000-01-01T00:00:00Z"}]`, true},
		{"ReadOnly key", `[{"id":"a","ReadOnly":true,"extra":{"a" : [ 1 , 2 ] }}]`, true},
		{"html in unknown", `[{"id":"a","x":"<&>","y":"\u2028"}]`, true},
		{"deep unknown", `[{"id":"a","x":` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `}]`, true},
		{"null record", `[null]`, true},
		{"not an object", `[1]`, true},
		{"top-level null", `null`, false},
		{"top-level object", `{}`, false},
		{"truncated", `[{"id":"`, false},
		{"trailing garbage", `[{"id":"a"}] x`, false},
		{"trailing comma", `[{"id":"a"},]`, false},
		{"control character", "[{\"id\":\"a\x01\"}]", false},
		{"bad escape", `[{"id":"a\x"}]`, false},
		{"leading zero", `[{"id":"a","diff-size":01}]`, false},
		{"bare minus", `[{"id":"a","diff-size":-}]`, false},
		{"single quotes", `[{'id':'a'}]`, false},
		{"byte order mark", "\ufeff[]", false},
		{"too deep", `[{"id":"a","x":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}]`, false},
	}
}

// TestRecordJSONMatchesEncodingJSON loads a varied corpus with the
// one-pass reader and with encoding/json, and writes what loads with the
// one-pass writer and with encoding/json: both must agree exactly.
func TestRecordJSONMatchesEncodingJSON(t *testing.T) {
	for _, tc := range recordCorpus(t) {
		t.Run(tc.name, func(t *testing.T) {
			compareWithReference(t, []byte(tc.data))
			_, ok, _ := fastDecodeRecords([]byte(tc.data))
			if ok != tc.fast {
				t.Errorf("one-pass reader took the file: %v, want %v", ok, tc.fast)
			}
		})
	}
}

// TestRecordJSONReadsPlainRecordsItself checks that ordinary records do not
// fall back to encoding/json: the one-pass reader fills every field.
func TestRecordJSONReadsPlainRecordsItself(t *testing.T) {
	data := `[{"id":"a","names":["n"],"parent":"p","created":"2024-01-02T03:04:05Z",` +
		`"compressed-diff-digest":"sha256:c","compressed-size":5,"diff-digest":"sha256:u","diff-size":7,` +
		`"toc-digest":"sha256:t","compression":4,"uidset":[1,2],"gidset":[3],` +
		`"flags":{"read-only":true,"f":1.5},"uidmap":[{"container_id":0,"host_id":1,"size":2}],` +
		`"big-data-names":["b"],"unknown":{"k":"v"}}]`
	var r recordReader
	r = recordReader{data: []byte(data), text: data, pos: 1}
	l := &Layer{}
	if !r.readRecord(l) {
		t.Fatalf("readRecord gave up at byte %d", r.pos)
	}
	want, err := referenceDecode([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(l, want[0]) || !l.ReadOnly || string(l.extra["unknown"]) != `{"k":"v"}` {
		t.Fatalf("got %#v\nwant %#v", *l, *want[0])
	}
}

// TestLoadedRecordsKeepTheirBytes: a save right after a load writes each
// unchanged record as the file had it (no encoding), and encodes afresh
// only the one that changed.
func TestLoadedRecordsKeepTheirBytes(t *testing.T) {
	first := `{ "id" : "a", "names" : ["x"], "created":"2024-01-02T03:04:05+00:00", "later": 1 }`
	second := `{"id":"b","parent":"a","flags":{"read-only":true}}`
	records, err := decodeRecords([]byte("[\n  " + first + ",\n  " + second + "\n]"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := encodeRecords(records)
	if err != nil {
		t.Fatal(err)
	}
	if want := "[" + first + "," + second + "]"; string(got) != want {
		t.Fatalf("first save wrote\n%s\nwant the records' own bytes\n%s", got, want)
	}
	records[1].Names = []string{"top"}
	got, err = encodeRecords(records)
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := records[1].appendJSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := "[" + first + "," + string(fresh) + "]"; string(got) != want || !strings.Contains(string(fresh), `"names":["top"]`) {
		t.Fatalf("after a change the save wrote\n%s\nwant\n%s", got, want)
	}
}

// TestEncodedFollowsChanges: a record's cached encoding is replaced when
// any of its fields changes in place, however it is changed.
func TestEncodedFollowsChanges(t *testing.T) {
	// The first record's nested flag is never cached; the second one is
	// cached from the load on.
	data := `[{"id":"a","names":["n"],"created":"2024-01-02T03:04:05Z","uidset":[1],` +
		`"flags":{"read-only":true,"nested":{"k":1}},"uidmap":[{"container_id":0,"host_id":1,"size":2}],"x":1},` +
		`{"id":"b","names":["n"],"created":"2024-01-02T03:04:05Z","uidset":[1],` +
		`"flags":{"read-only":true},"uidmap":[{"container_id":0,"host_id":1,"size":2}],"x":1}]`
	changes := []struct {
		name   string
		change func(l *Layer)
	}{
		{"nothing", func(l *Layer) {}},
		{"name in place", func(l *Layer) { l.Names[0] = "m" }},
		{"names appended", func(l *Layer) { l.Names = append(l.Names, "o") }},
		{"flag set", func(l *Layer) { l.setFlag(flagIncomplete, true) }},
		{"flag cleared", func(l *Layer) { l.setFlag(flagReadOnly, false) }},
		{"nested flag in place", func(l *Layer) {
			if m, ok := l.Flags["nested"].(map[string]any); ok {
				m["k"] = 2.0
			}
		}},
		{"uid in place", func(l *Layer) { l.UIDs[0] = 7 }},
		{"idmap in place", func(l *Layer) { l.UIDMap[0].Size = 9 }},
		{"created", func(l *Layer) { l.Created = l.Created.Add(time.Second) }},
		{"digest", func(l *Layer) { l.UncompressedDigest = digest.FromString("x") }},
		{"size", func(l *Layer) { l.UncompressedSize = 1 }},
		{"extra in place", func(l *Layer) { l.extra["x"][0] = '2' }},
		{"extra dropped", func(l *Layer) { delete(l.extra, "x") }},
	}
	for _, tc := range changes {
		t.Run(tc.name, func(t *testing.T) {
			records, err := decodeRecords([]byte(data))
			if err != nil {
				t.Fatal(err)
			}
			for _, saved := range []bool{false, true} {
				if saved {
					if _, err := encodeRecords(records); err != nil {
						t.Fatal(err)
					}
				}
				for _, l := range records {
					tc.change(l)
				}
				got, err := encodeRecords(records)
				if err != nil {
					t.Fatal(err)
				}
				want, err := referenceEncode(records)
				if err != nil {
					t.Fatal(err)
				}
				if tc.name == "nothing" && !saved {
					continue // the second record keeps its bytes from the file
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("after the change (saved before: %v) encodeRecords wrote\n%s\nwant\n%s", saved, got, want)
				}
			}
		})
	}
}

// TestRecordJSONManyRecords compares both readers and writers on a
// generated store of records like Put writes.
func TestRecordJSONManyRecords(t *testing.T) {
	var b strings.Builder
	b.WriteString("[")
	for i := range 300 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"id":"%064x","parent":"%064x","created":"2024-01-02T03:04:%02d.%dZ",`+
			`"compressed-diff-digest":"%s","compressed-size":%d,"diff-digest":"%s","diff-size":%d,`+
			`"compression":%d,"uidset":[0,%d],"gidset":[0],"flags":{"read-only":true}}`,
			i+1, i, i%60, i, digest.FromString(fmt.Sprint("c", i)), i*1000,
			digest.FromString(fmt.Sprint("u", i)), i*3000, i%5, i)
	}
	b.WriteString("]")
	compareWithReference(t, []byte(b.String()))
}

// FuzzRecordJSON compares the one-pass reader and writer with
// encoding/json on arbitrary layers.json content, without opening a store
// (FuzzLoadLayersJSON does the same and more, but each of its runs opens
// lock files that stay open for the life of the process).
func FuzzRecordJSON(f *testing.F) {
	for _, tc := range recordCorpus(f) {
		f.Add([]byte(tc.data))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		compareWithReference(t, data)
	})
}
