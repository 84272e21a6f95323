package gaffer_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gafferhq/gaffer"
)

func jtEcho(ctx context.Context, jc *gaffer.JobContext, in int) (int, error) { return in, nil }

func TestRegisterTakenNameFails(t *testing.T) {
	name := uniqueTypeName("jobtypetest.taken")
	first, err := gaffer.Register(name, func(ctx context.Context, jc *gaffer.JobContext, in int) (string, error) {
		return "first", nil
	})
	require.NoError(t, err)
	require.Equal(t, name, first.Name())

	// Another function, even of other types, cannot take the name.
	_, err = gaffer.Register(name, func(ctx context.Context, jc *gaffer.JobContext, in int) (string, error) {
		return "second", nil
	})
	require.ErrorIs(t, err, gaffer.ErrJobTypeTaken)
	require.Contains(t, err.Error(), name)
	_, err = gaffer.Register(name, jtEcho)
	require.ErrorIs(t, err, gaffer.ErrJobTypeTaken)

	// The first registration still runs the name's jobs.
	l, _ := newLeader(t, testOpts{})
	got, err := gaffer.Run(t.Context(), l, first.New(1))
	require.NoError(t, err)
	require.Equal(t, "first", got)

	func() {
		defer func() {
			r := recover()
			require.NotNil(t, r, "MustRegister panics on a taken name")
			err, ok := r.(error)
			require.True(t, ok, "it panics with the error, got %T", r)
			require.ErrorIs(t, err, gaffer.ErrJobTypeTaken)
		}()
		gaffer.MustRegister(name, jtEcho)
	}()
}

func TestRegisterRefusesEmptyNameAndNilFunction(t *testing.T) {
	_, err := gaffer.Register("", jtEcho)
	require.Error(t, err)
	_, err = gaffer.Register[int, int](uniqueTypeName("jobtypetest.nil"), nil)
	require.Error(t, err)
}

type jtChan struct {
	Name string
	Feed chan int
}

type jtFunc struct {
	Callback func() int
}

type jtComplex struct {
	Z complex128
}

type jtDeep struct {
	Outer []jtMid
}

type jtMid struct {
	Mid *jtLeaf
}

type jtLeaf struct {
	Inner map[string]chan struct{}
}

type jtKey struct{ A, B int }

type jtStructKeys struct {
	Index map[jtKey]string
}

// mustNotRegister registers fn and requires ErrNotEncodable naming every
// string in want.
func mustNotRegister[In, Out any](t *testing.T, want ...string) {
	t.Helper()
	name := uniqueTypeName("jobtypetest.bad")
	fn := func(ctx context.Context, jc *gaffer.JobContext, in In) (Out, error) {
		var out Out
		return out, nil
	}
	_, err := gaffer.Register(name, fn)
	require.ErrorIs(t, err, gaffer.ErrNotEncodable)
	require.Contains(t, err.Error(), name, "the error names the job type")
	for _, w := range want {
		require.Contains(t, err.Error(), w)
	}
	// Refused, it does not take the name.
	_, err = gaffer.Register(name, jtEcho)
	require.NoError(t, err)

	defer func() {
		r := recover()
		require.NotNil(t, r, "MustRegister panics")
		err, ok := r.(error)
		require.True(t, ok, "it panics with the error, got %T", r)
		require.ErrorIs(t, err, gaffer.ErrNotEncodable)
	}()
	gaffer.MustRegister(uniqueTypeName("jobtypetest.mustbad"), fn)
}

func TestRegisterRefusesTypesJSONCannotHold(t *testing.T) {
	t.Run("chan field", func(t *testing.T) { mustNotRegister[jtChan, int](t, "jtChan.Feed", "chan") })
	t.Run("func field", func(t *testing.T) { mustNotRegister[jtFunc, int](t, "jtFunc.Callback", "func") })
	t.Run("complex field", func(t *testing.T) { mustNotRegister[jtComplex, int](t, "jtComplex.Z", "complex128") })
	t.Run("deep field", func(t *testing.T) {
		mustNotRegister[jtDeep, int](t, "jtDeep.Outer", "jtMid.Mid", "jtLeaf.Inner", "chan struct {}")
	})
	t.Run("struct map keys", func(t *testing.T) { mustNotRegister[jtStructKeys, int](t, "jtStructKeys.Index", "jtKey") })
	t.Run("struct map keys as the whole input", func(t *testing.T) { mustNotRegister[map[jtKey]int, int](t, "jtKey") })
	t.Run("bool map keys", func(t *testing.T) { mustNotRegister[map[bool]int, int](t, "bool") })
	t.Run("bad output", func(t *testing.T) { mustNotRegister[int, jtChan](t, "jtChan.Feed") })
	t.Run("bare chan", func(t *testing.T) { mustNotRegister[chan int, int](t, "chan int") })
	t.Run("func in a slice", func(t *testing.T) { mustNotRegister[[]func(), int](t, "func()") })
	t.Run("complex in an array", func(t *testing.T) { mustNotRegister[[2]complex64, int](t, "complex64") })
}

type jtIgnored struct {
	Name string
	//lint:ignore U1000 never used: it is here to show that an unexported chan is not encoded, so not refused
	feed     chan int
	Callback func() `json:"-"`
	Any      any
	Counts   map[int]string
	Named    map[jtTextKey]int
	Next     *jtIgnored // recursive
}

type jtTextKey struct{ A, B string }

func (k jtTextKey) MarshalText() ([]byte, error) { return []byte(k.A + "/" + k.B), nil }

func (k *jtTextKey) UnmarshalText(b []byte) error {
	a, b2, ok := strings.Cut(string(b), "/")
	if !ok {
		return errors.New("no slash")
	}
	k.A, k.B = a, b2
	return nil
}

// jtTemp holds a channel, yet encodes: it is a json.Marshaler.
type jtTemp struct {
	Celsius float64
	Updates chan float64
}

func (t jtTemp) MarshalJSON() ([]byte, error) { return json.Marshal(t.Celsius) }

func (t *jtTemp) UnmarshalJSON(b []byte) error { return json.Unmarshal(b, &t.Celsius) }

func TestRegisterAcceptsEncodableTypes(t *testing.T) {
	_, err := gaffer.Register(uniqueTypeName("jobtypetest.ignored"), func(ctx context.Context, jc *gaffer.JobContext, in jtIgnored) (jtIgnored, error) {
		return in, nil
	})
	require.NoError(t, err, "unexported and json:\"-\" fields, interfaces, int and TextMarshaler map keys and recursive types are fine")

	double, err := gaffer.Register(uniqueTypeName("jobtypetest.temp"), func(ctx context.Context, jc *gaffer.JobContext, in jtTemp) (jtTemp, error) {
		if in.Updates != nil {
			return jtTemp{}, errors.New("the channel cannot have crossed")
		}
		return jtTemp{Celsius: 2 * in.Celsius}, nil
	})
	require.NoError(t, err, "a json.Marshaler is accepted whatever its fields")

	l, _ := newLeader(t, testOpts{})
	got, err := gaffer.Run(t.Context(), l, double.New(jtTemp{Celsius: 21.5, Updates: make(chan float64)}))
	require.NoError(t, err)
	require.Equal(t, 43.0, got.Celsius, "input and result went through MarshalJSON and UnmarshalJSON")

	keys, err := gaffer.Register(uniqueTypeName("jobtypetest.keys"), func(ctx context.Context, jc *gaffer.JobContext, in map[jtTextKey]int) (int, error) {
		return in[jtTextKey{"a", "b"}], nil
	})
	require.NoError(t, err)
	l2, _ := newLeader(t, testOpts{})
	n, err := gaffer.Run(t.Context(), l2, keys.New(map[jtTextKey]int{{"a", "b"}: 7, {"c", "d"}: 8}))
	require.NoError(t, err)
	require.Equal(t, 7, n)
}

type jtHidden struct{ Feed chan int }

// jtEmbeds embeds an unexported struct type: encoding/json promotes its
// exported fields, so Feed is encoded.
type jtEmbeds struct {
	jtHidden
	N int
}

// jtPtrMarshal is a json.Marshaler only through its pointer, which
// encoding/json does not use for a value it cannot address.
type jtPtrMarshal struct{ Feed chan int }

func (p *jtPtrMarshal) MarshalJSON() ([]byte, error) { return []byte(`0`), nil }

type jtHoldsPtrMarshal struct{ P jtPtrMarshal }

// Register promises to refuse a type JSON cannot encode. These two cannot
// be encoded by value (json.Marshal fails), yet are accepted.
func TestRegisterRefusesHiddenUnencodableFields(t *testing.T) {
	cases := map[string]struct {
		value any
		check func(name string) error
	}{
		"chan in an embedded unexported struct": {jtEmbeds{}, func(name string) error {
			_, err := gaffer.Register(name, func(ctx context.Context, jc *gaffer.JobContext, in jtEmbeds) (int, error) { return in.N, nil })
			return err
		}},
		"chan in a struct whose MarshalJSON has a pointer receiver": {jtHoldsPtrMarshal{}, func(name string) error {
			_, err := gaffer.Register(name, func(ctx context.Context, jc *gaffer.JobContext, in jtHoldsPtrMarshal) (int, error) { return 0, nil })
			return err
		}},
	}
	for what, c := range cases {
		_, merr := json.Marshal(c.value)
		require.Error(t, merr, "%s: encoding/json cannot encode it", what)
		err := c.check(uniqueTypeName("jobtypetest.hidden"))
		require.ErrorIs(t, err, gaffer.ErrNotEncodable, what)
	}
}

// What Register lets through surfaces at New as ErrBadInput, naming the
// job type: the input is encoded when the job is made.
func TestUnencodableInputValueIsBadInput(t *testing.T) {
	name := uniqueTypeName("jobtypetest.anyinput")
	typ, err := gaffer.Register(name, func(ctx context.Context, jc *gaffer.JobContext, in any) (int, error) { return 0, nil })
	require.NoError(t, err)
	l, _ := newLeader(t, testOpts{})
	_, err = l.Run(t.Context(), typ.New(make(chan int)))
	require.ErrorIs(t, err, gaffer.ErrBadInput)
	require.Contains(t, err.Error(), name)
	require.Zero(t, l.Stats().Attempts)
}
