package gaffer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer/jobstore"
)

// phReplace is a mapPlaceholders function that replaces a placeholder by
// a small JSON value naming it, and records what it saw.
func phReplace(seen *[]placeholder) func(placeholder) ([]byte, error) {
	return func(ph placeholder) ([]byte, error) {
		*seen = append(*seen, ph)
		b, err := json.Marshal(ph.Path)
		if err != nil {
			return nil, err
		}
		return fmt.Appendf(nil, `{"replaced":%d,"path":%s}`, ph.Job, b), nil
	}
}

func TestMapPlaceholders(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want string // "" means: the input, unchanged
		phs  []placeholder
	}{
		{name: "no placeholder", in: `{"a":[1,2,{"b":"c"}],"d":null}`},
		{name: "empty input", in: ``},
		{name: "scalar", in: `42`},
		{name: "whole input is one placeholder",
			in:   `{"$gaffer.promise":{"job":12}}`,
			want: `{"replaced":12,"path":null}`,
			phs:  []placeholder{{Job: 12}}},
		{name: "negative (temporary) job",
			in:   `{"$gaffer.promise":{"job":-7}}`,
			want: `{"replaced":-7,"path":null}`,
			phs:  []placeholder{{Job: -7}}},
		{name: "many placeholders in an array, in order",
			in:   `[{"$gaffer.promise":{"job":1}},{"$gaffer.promise":{"job":2}},3,{"$gaffer.promise":{"job":4}}]`,
			want: `[{"replaced":1,"path":null},{"replaced":2,"path":null},3,{"replaced":4,"path":null}]`,
			phs:  []placeholder{{Job: 1}, {Job: 2}, {Job: 4}}},
		{name: "nested in objects and arrays",
			in:   `{"a":{"b":[0,{"c":{"$gaffer.promise":{"job":5}}}]},"d":{"$gaffer.promise":{"job":6}}}`,
			want: `{"a":{"b":[0,{"c":{"replaced":5,"path":null}}]},"d":{"replaced":6,"path":null}}`,
			phs:  []placeholder{{Job: 5}, {Job: 6}}},
		{name: "marker text inside a string value is data",
			in: `{"s":"{\"$gaffer.promise\":{\"job\":1}}","t":"$gaffer.promise"}`},
		{name: "marker as a plain string value is data",
			in: `{"k":"$gaffer.promise","a":["$gaffer.promise"]}`},
		{name: "marker key with other keys after it is not a placeholder",
			in: `{"$gaffer.promise":{"job":1},"x":2}`},
		{name: "marker key with other keys before it is not a placeholder",
			in: `{"x":2,"$gaffer.promise":{"job":1}}`},
		{name: "non-placeholder marker object still has its nested placeholders replaced",
			in:   `{"$gaffer.promise":{"job":1},"x":{"$gaffer.promise":{"job":2}}}`,
			want: `{"$gaffer.promise":{"job":1},"x":{"replaced":2,"path":null}}`,
			phs:  []placeholder{{Job: 2}}},
		{name: "placeholder with a path",
			in:   `{"v":{"$gaffer.promise":{"job":3,"path":["Addr",2,"k"]}}}`,
			want: `{"v":{"replaced":3,"path":["Addr",2,"k"]}}`,
			phs:  []placeholder{{Job: 3, Path: []any{"Addr", 2, "k"}}}},
		{name: "path before job, and unknown inner keys ignored",
			in:   `{"$gaffer.promise":{"path":[0],"x":true,"job":9}}`,
			want: `{"replaced":9,"path":[0]}`,
			phs:  []placeholder{{Job: 9, Path: []any{0}}}},
		{name: "whitespace everywhere",
			in:   "[ {  \"$gaffer.promise\" : { \"job\" : 8 , \"path\" : [ \"a\" ] } } ,\n\t{\r\n\"$gaffer.promise\":{\"job\":10}\n} ]",
			want: `[ {"replaced":8,"path":["a"]} ,` + "\n\t" + `{"replaced":10,"path":null} ]`,
			phs:  []placeholder{{Job: 8, Path: []any{"a"}}, {Job: 10}}},
		{name: "the bytes around a placeholder are kept as they were",
			in:   `{"a" : [ "x",  {"$gaffer.promise":{"job":1}}  ] }`,
			want: `{"a" : [ "x",  {"replaced":1,"path":null}  ] }`,
			phs:  []placeholder{{Job: 1}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var seen []placeholder
			got, err := mapPlaceholders([]byte(c.in), phReplace(&seen))
			require.NoError(t, err)
			want := c.want
			if want == "" {
				want = c.in
				require.Empty(t, seen, "no placeholder, no call")
			}
			require.Equal(t, want, string(got))
			require.Equal(t, c.phs, seen)
			if json.Valid([]byte(c.in)) {
				require.True(t, json.Valid(got), "valid in, valid out: %s", got)
			}
		})
	}
}

// With no placeholder, mapPlaceholders hands back its input itself: a
// fan-in input is not copied when it holds nothing to replace.
func TestMapPlaceholdersReturnsInputWhenNothingToReplace(t *testing.T) {
	in := []byte(`{"a":"$gaffer.promise","b":{"$gaffer.promise":1,"c":2}}`)
	got, err := mapPlaceholders(in, func(placeholder) ([]byte, error) {
		t.Fatal("called for a non-placeholder")
		return nil, nil
	})
	require.NoError(t, err)
	require.Same(t, &in[0], &got[0])
	require.Len(t, got, len(in))
}

func TestMapPlaceholdersErrors(t *testing.T) {
	boom := errors.New("boom")
	_, err := mapPlaceholders([]byte(`[1,{"$gaffer.promise":{"job":1}}]`), func(placeholder) ([]byte, error) { return nil, boom })
	require.ErrorIs(t, err, boom, "fn's error is returned")

	for _, in := range []string{
		`{"$gaffer.promise":5}`,                            // value not an object
		`{"$gaffer.promise":{"path":["a"]}}`,               // no job
		`{"$gaffer.promise":{"job":"3"}}`,                  // job not a number
		`{"$gaffer.promise":{"job":1.5}}`,                  // job not an integer
		`{"$gaffer.promise":{"job":99999999999999999999}}`, // job out of range
		`{"$gaffer.promise":{"job":1,"path":[1.5]}}`,       // path index not an integer
		`{"$gaffer.promise":{"job":1,"path":[true]}}`,      // path element neither key nor index
		`{"$gaffer.promise":{"job":1}`,                     // truncated
		`{"$gaffer.promise":{"job":}}`,                     // no number
	} {
		t.Run(in, func(t *testing.T) {
			called := false
			_, err := mapPlaceholders([]byte(in), func(placeholder) ([]byte, error) { called = true; return []byte("0"), nil })
			require.Error(t, err)
			require.Contains(t, err.Error(), "promise")
			require.False(t, called)
		})
	}
}

func TestPlaceholderJSONRoundTrip(t *testing.T) {
	for _, ph := range []placeholder{
		{Job: 0},
		{Job: 1},
		{Job: -1},
		{Job: math.MaxInt64},
		{Job: math.MinInt64},
		{Job: 12, Path: []any{"Addr"}},
		{Job: -3, Path: []any{0, "a b", 7, `quo"te`, "ünï", "$gaffer.promise", ""}},
		{Job: 5, Path: []any{math.MaxInt32, 0}},
	} {
		t.Run(fmt.Sprint(ph), func(t *testing.T) {
			b := placeholderJSON(ph)
			require.True(t, json.Valid(b), "%s", b)
			require.True(t, hasPromises(b))

			got, end, ok, err := parsePlaceholderAt(b, 0)
			require.NoError(t, err)
			require.True(t, ok)
			require.Equal(t, len(b), end)
			require.Equal(t, ph, got)

			// Inside a bigger document, at an offset.
			doc := append([]byte(`[true, `), b...)
			doc = append(doc, `, "tail"]`...)
			got, end, ok, err = parsePlaceholderAt(doc, len(`[true, `))
			require.NoError(t, err)
			require.True(t, ok)
			require.Equal(t, ph, got)
			require.Equal(t, `, "tail"]`, string(doc[end:]))

			// parsePlaceholder reads the same form.
			p2, ok := parsePlaceholder(b)
			require.True(t, ok)
			require.Equal(t, ph.Job, p2.Job)
			require.Equal(t, len(ph.Path), len(p2.Path))

			// And what mapPlaceholders passes on is the same placeholder.
			var seen []placeholder
			_, err = mapPlaceholders(doc, phReplace(&seen))
			require.NoError(t, err)
			require.Equal(t, []placeholder{ph}, seen)
		})
	}
}

func TestParsePlaceholderAtNotAPlaceholder(t *testing.T) {
	b := []byte(`{"$gaffer.promise":{"job":1},"other":true}`)
	_, _, ok, err := parsePlaceholderAt(b, 0)
	require.NoError(t, err)
	require.False(t, ok)

	_, ok = parsePlaceholder(b)
	require.False(t, ok)
	_, ok = parsePlaceholder([]byte(`"$gaffer.promise"`))
	require.False(t, ok)
	_, ok = parsePlaceholder([]byte(`  {"$gaffer.promise":{"job":4}}  `))
	require.True(t, ok, "surrounding space is allowed")
}

func TestNavigate(t *testing.T) {
	doc := []byte(`{"a":{"b":[10,{"c":"deep"},[true]]},"n":12345678901234567890,"s":"x","e":{}}`)
	cases := []struct {
		path []any
		want string
	}{
		{nil, string(doc)},
		{[]any{}, string(doc)},
		{[]any{"a", "b", 0}, `10`},
		{[]any{"a", "b", 1, "c"}, `"deep"`},
		{[]any{"a", "b", 2, 0}, `true`},
		{[]any{"a", "b", 2}, `[true]`},
		{[]any{"e"}, `{}`},
		// Big numbers are kept exactly, not rounded through float64.
		{[]any{"n"}, `12345678901234567890`},
	}
	for _, c := range cases {
		got, err := navigate(doc, c.path)
		require.NoError(t, err, "%v", c.path)
		if c.want[0] == '{' || c.want[0] == '[' {
			require.JSONEq(t, c.want, string(got), "%v", c.path)
		} else {
			require.Equal(t, c.want, string(got), "%v", c.path)
		}
	}

	errs := []struct {
		path []any
		want string
	}{
		{[]any{"zz"}, "no such field"},
		{[]any{"a", "b", 3}, "out of range"},
		{[]any{"a", "b", -1}, "out of range"},
		{[]any{"a", 0}, "not an array"},
		{[]any{"a", "b", "c"}, "not an object"},
		{[]any{"s", "x"}, "not an object"},
		{[]any{"n", 0}, "not an array"},
		{[]any{int64(1)}, "not a key or an index"},
		{[]any{1.0}, "not a key or an index"},
	}
	for _, c := range errs {
		_, err := navigate(doc, c.path)
		require.ErrorContains(t, err, c.want, "%v", c.path)
	}

	_, err := navigate([]byte(`{"a":`), []any{"a"})
	require.Error(t, err, "malformed JSON")
}

// A value that is itself a promise (a job forwarded another's result) is
// met part-way along a path: the rest of the path goes onto the promise.
func TestNavigateThroughAPromise(t *testing.T) {
	doc := []byte(`{"a":{"$gaffer.promise":{"job":5,"path":["x"]}},"b":[{"$gaffer.promise":{"job":6}}]}`)

	got, err := navigate(doc, []any{"a", "y", 2})
	require.NoError(t, err)
	ph, ok := parsePlaceholder(got)
	require.True(t, ok, "%s", got)
	require.Equal(t, int64(5), ph.Job)
	require.Equal(t, []any{"x", "y", float64(2)}, ph.Path, "parsePlaceholder decodes numbers as float64")
	var seen []placeholder
	_, err = mapPlaceholders(got, phReplace(&seen))
	require.NoError(t, err)
	require.Equal(t, []placeholder{{Job: 5, Path: []any{"x", "y", 2}}}, seen)

	got, err = navigate(doc, []any{"b", 0, "k"})
	require.NoError(t, err)
	seen = nil
	_, err = mapPlaceholders(got, phReplace(&seen))
	require.NoError(t, err)
	require.Equal(t, []placeholder{{Job: 6, Path: []any{"k"}}}, seen)

	// The whole document a promise.
	got, err = navigate([]byte(`{"$gaffer.promise":{"job":7}}`), []any{0})
	require.NoError(t, err)
	seen = nil
	_, err = mapPlaceholders(got, phReplace(&seen))
	require.NoError(t, err)
	require.Equal(t, []placeholder{{Job: 7, Path: []any{0}}}, seen)

	// A path that ends on a promise returns the promise as it is.
	got, err = navigate(doc, []any{"a"})
	require.NoError(t, err)
	seen = nil
	_, err = mapPlaceholders(got, phReplace(&seen))
	require.NoError(t, err)
	require.Equal(t, []placeholder{{Job: 5, Path: []any{"x"}}}, seen)

	// An object with the marker key and others is plain data.
	_, err = navigate([]byte(`{"$gaffer.promise":{"job":7},"z":1}`), []any{"z"})
	require.NoError(t, err)
}

type promised struct {
	Addr  string            `json:"addr"`
	Ports []int             `json:"ports"`
	Tags  map[string]string `json:"tags"`
	Plain int
}

func TestPromiseJSONRoundTrip(t *testing.T) {
	// A resolved promise is its plain value.
	v := promised{Addr: "h:1", Ports: []int{80, 443}, Tags: map[string]string{"k": "v"}, Plain: 3}
	b, err := json.Marshal(Resolved(v))
	require.NoError(t, err)
	plain, _ := json.Marshal(v)
	require.Equal(t, string(plain), string(b))
	require.False(t, hasPromises(b))

	var back Promise[promised]
	require.NoError(t, json.Unmarshal(b, &back))
	got, err := back.Get()
	require.NoError(t, err)
	require.Equal(t, v, got)

	// An unresolved one is a placeholder, and reads back as one.
	p := Promise[promised]{ref: &promiseRef{id: 12, path: []any{"addr"}}}
	b, err = json.Marshal(p)
	require.NoError(t, err)
	require.Equal(t, `{"$gaffer.promise":{"job":12,"path":["addr"]}}`, string(b))
	var back2 Promise[promised]
	require.NoError(t, json.Unmarshal(b, &back2))
	_, err = back2.Get()
	require.ErrorIs(t, err, ErrUnresolved)
	require.NotNil(t, back2.ref)
	require.Equal(t, jobstore.JobID(12), back2.ref.id)
	b2, err := json.Marshal(back2)
	require.NoError(t, err)
	require.Equal(t, string(b), string(b2), "a placeholder survives a decode and encode")

	// A promise of a job being built names its temporary number.
	n := &node{tmp: -42}
	b, err = json.Marshal(Promise[int]{ref: &promiseRef{node: n, path: []any{1}}})
	require.NoError(t, err)
	require.Equal(t, `{"$gaffer.promise":{"job":-42,"path":[1]}}`, string(b))

	// The zero Promise cannot be encoded.
	_, err = json.Marshal(Promise[int]{})
	require.Error(t, err)

	// Inside a struct, a promise field is either.
	type holder struct {
		P Promise[int] `json:"p"`
		Q Promise[int] `json:"q"`
	}
	b, err = json.Marshal(holder{P: Resolved(7), Q: Promise[int]{ref: &promiseRef{id: 3}}})
	require.NoError(t, err)
	require.Equal(t, `{"p":7,"q":{"$gaffer.promise":{"job":3}}}`, string(b))
	var h holder
	require.NoError(t, json.Unmarshal(b, &h))
	pv, err := h.P.Get()
	require.NoError(t, err)
	require.Equal(t, 7, pv)
	_, err = h.Q.Get()
	require.ErrorIs(t, err, ErrUnresolved)

	// Resolving the placeholders, as the leader does, gives a value the
	// job can read.
	resolved, err := mapPlaceholders(b, func(ph placeholder) ([]byte, error) {
		require.Equal(t, int64(3), ph.Job)
		return []byte(`99`), nil
	})
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(resolved, &h))
	qv, err := h.Q.Get()
	require.NoError(t, err)
	require.Equal(t, 99, qv)
}

func TestIndexFieldKeyPaths(t *testing.T) {
	type result struct {
		List []string          `json:"list"`
		M    map[string][]int  `json:"m"`
		S    []promised        `json:"s"`
		Deep map[string]string `json:"-"`
	}
	base := Promise[result]{ref: &promiseRef{id: 4}}

	list := Field[[]string](base, "list")
	require.Equal(t, []any{"list"}, list.ref.path)
	require.Empty(t, base.ref.path, "deriving leaves the parent alone")

	e1, e2 := Index(list, 1), Index(list, 2)
	require.Equal(t, []any{"list", 1}, e1.ref.path)
	require.Equal(t, []any{"list", 2}, e2.ref.path, "siblings derived from one promise do not share a path")
	require.Equal(t, []any{"list"}, list.ref.path)

	k := Index(Key(Field[map[string][]int](base, "m"), "x"), 0)
	require.Equal(t, []any{"m", "x", 0}, k.ref.path)
	addr := Field[string](Index(Field[[]promised](base, "s"), 3), "addr")
	require.Equal(t, []any{"s", 3, "addr"}, addr.ref.path)
	for _, ref := range []*promiseRef{e1.ref, k.ref, addr.ref} {
		require.Equal(t, jobstore.JobID(4), ref.id, "the derived promise names the same job")
	}

	b, err := json.Marshal(addr)
	require.NoError(t, err)
	require.Equal(t, `{"$gaffer.promise":{"job":4,"path":["s",3,"addr"]}}`, string(b))

	// A promise of a job being built keeps its node.
	n := &node{tmp: -9}
	fromNode := Field[string](Promise[promised]{ref: &promiseRef{node: n}}, "addr")
	require.Same(t, n, fromNode.ref.node)
	b, err = json.Marshal(fromNode)
	require.NoError(t, err)
	require.Equal(t, `{"$gaffer.promise":{"job":-9,"path":["addr"]}}`, string(b))

	// A zero promise derives a zero promise.
	zero := Field[int](Promise[promised]{}, "Plain")
	require.Nil(t, zero.ref)
	_, err = zero.Get()
	require.ErrorIs(t, err, ErrUnresolved)
}

func TestDeriveFromResolvedPromise(t *testing.T) {
	v := promised{Addr: "h:1", Ports: []int{80, 443}, Tags: map[string]string{"k": "v"}, Plain: 3}
	r := Resolved(v)

	addr, err := Field[string](r, "addr").Get()
	require.NoError(t, err)
	require.Equal(t, "h:1", addr)
	plain, err := Field[int](r, "Plain").Get()
	require.NoError(t, err, "a field without a tag is named by its Go name")
	require.Equal(t, 3, plain)
	port, err := Index(Field[[]int](r, "ports"), 1).Get()
	require.NoError(t, err)
	require.Equal(t, 443, port)
	tag, err := Key(Field[map[string]string](r, "tags"), "k").Get()
	require.NoError(t, err)
	require.Equal(t, "v", tag)

	// Out of range, a missing field or a wrong type gives no value.
	_, err = Index(Field[[]int](r, "ports"), 2).Get()
	require.ErrorIs(t, err, ErrUnresolved)
	_, err = Field[int](r, "nope").Get()
	require.ErrorIs(t, err, ErrUnresolved)
	_, err = Field[int](r, "addr").Get()
	require.ErrorIs(t, err, ErrUnresolved)
}

// refMapPlaceholders is what mapPlaceholders should do, on a decoded
// value: every object whose only key is the marker is replaced by fn's
// value, and nothing else changes.
func refMapPlaceholders(v any, fn func(placeholder) ([]byte, error)) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		if raw, ok := x[placeholderKey]; ok && len(x) == 1 {
			ph, err := toPlaceholder(raw)
			if err != nil {
				return nil, err
			}
			b, err := fn(ph)
			if err != nil {
				return nil, err
			}
			var out any
			err = json.Unmarshal(b, &out)
			return out, err
		}
		for k, e := range x {
			r, err := refMapPlaceholders(e, fn)
			if err != nil {
				return nil, err
			}
			x[k] = r
		}
	case []any:
		for i, e := range x {
			r, err := refMapPlaceholders(e, fn)
			if err != nil {
				return nil, err
			}
			x[i] = r
		}
	}
	return v, nil
}

func decodeAny(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}

func FuzzMapPlaceholders(f *testing.F) {
	for _, s := range []string{
		``, `1`, `"x"`, `[]`, `{}`,
		`{"$gaffer.promise":{"job":12}}`,
		`{"$gaffer.promise":{"job":-3,"path":["a",1]}}`,
		`[{"$gaffer.promise":{"job":1}},{"$gaffer.promise":{"job":2}}]`,
		`{"a":{"b":[{"$gaffer.promise":{"job":5}}]},"c":"$gaffer.promise"}`,
		`{"s":"{\"$gaffer.promise\":{\"job\":1}}"}`,
		`{"$gaffer.promise":{"job":1},"x":{"$gaffer.promise":{"job":2}}}`,
		` { "$gaffer.promise" : { "job" : 8 , "path" : [ "a" ] } } `,
		`{"$gaffer.promise":{"job":1}`,
		`{"$gaffer.promise":{"job":}}`,
		`{"$gaffer.promise":5}`,
		`{"$gaffer.promise":{"job":1,"path":[1.5]}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		in = bytes.Clone(in)
		orig := bytes.Clone(in)
		calls := 0
		fn := func(ph placeholder) ([]byte, error) {
			calls++
			return fmt.Appendf(nil, `{"r":%d,"n":%d}`, ph.Job, len(ph.Path)), nil
		}
		out, err := mapPlaceholders(in, fn)
		if !bytes.Equal(in, orig) {
			t.Fatalf("input modified: %q became %q", orig, in)
		}
		if err != nil || !json.Valid(in) {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("valid input %q gave invalid output %q", in, out)
		}
		if calls == 0 && !bytes.Equal(in, out) {
			t.Fatalf("no placeholder, yet %q became %q", in, out)
		}
		// Nothing left to replace: a second pass calls fn no more.
		calls = 0
		if _, err := mapPlaceholders(out, fn); err != nil {
			t.Fatalf("second pass over %q: %v", out, err)
		}
		if calls != 0 {
			t.Fatalf("second pass over %q found %d placeholders", out, calls)
		}
		// Same result as replacing on the decoded value. Escapes in keys
		// (a key spelled \u0024gaffer.promise) are not looked for in the
		// bytes; Go's encoder never writes them.
		if bytes.IndexByte(in, '\\') >= 0 {
			return
		}
		v, err := decodeAny(in)
		if err != nil {
			return
		}
		want, err := refMapPlaceholders(v, fn)
		if err != nil {
			t.Fatalf("mapPlaceholders accepted %q but the reference refuses it: %v", in, err)
		}
		got, err := decodeAny(out)
		if err != nil {
			t.Fatalf("output %q: %v", out, err)
		}
		wb, _ := json.Marshal(want)
		gb, _ := json.Marshal(got)
		if !bytes.Equal(wb, gb) {
			t.Fatalf("input %q:\n got %s\nwant %s", in, gb, wb)
		}
	})
}

// The marker in the middle of a long document costs one scan, and every
// placeholder of a big fan-in is found.
func TestMapPlaceholdersManyPromises(t *testing.T) {
	var b strings.Builder
	b.WriteByte('[')
	const n = 20000
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(placeholderJSON(placeholder{Job: int64(i + 1)}))
	}
	b.WriteByte(']')
	out, err := mapPlaceholders([]byte(b.String()), func(ph placeholder) ([]byte, error) {
		return fmt.Appendf(nil, "%d", ph.Job*2), nil
	})
	require.NoError(t, err)
	var xs []int
	require.NoError(t, json.Unmarshal(out, &xs))
	require.Len(t, xs, n)
	for i, x := range xs {
		require.Equal(t, 2*(i+1), x)
	}
}
