package gaffer_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/gafferhq/gaffer"
)

// exServer is a struct result; other jobs take parts of it.
type exServer struct {
	Host  string `json:"host"`
	Ports []int  `json:"ports"`
}

// exStartServer "starts" a server and returns where it listens.
var exStartServer = gaffer.MustRegister("example.startserver", func(ctx context.Context, jc *gaffer.JobContext, name string) (exServer, error) {
	return exServer{Host: name + ".internal", Ports: []int{80, 443}}, nil
}, gaffer.Cores(0.1), gaffer.Memory("16Mi"), gaffer.Disk("1Mi"))

// exDialIn holds promises of parts of the server's result; the leader
// resolves them before exDial runs.
type exDialIn struct {
	Host gaffer.Promise[string]
	Port gaffer.Promise[int]
}

var exDial = gaffer.MustRegister("example.dial", func(ctx context.Context, jc *gaffer.JobContext, in exDialIn) (string, error) {
	host, err := in.Host.Get()
	if err != nil {
		return "", err
	}
	port, err := in.Port.Get()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("https://%s:%d", host, port), nil
}, gaffer.Cores(0.1), gaffer.Memory("16Mi"), gaffer.Disk("1Mi"))

// exDeploy starts a server and, after it, a client that dials the
// server's second port.
var exDeploy = gaffer.MustRegister("example.deploy", func(ctx context.Context, jc *gaffer.JobContext, name string) (string, error) {
	server := exStartServer.New(name)
	dial := exDial.New(exDialIn{
		Host: gaffer.Field[string](server.Result(), "host"),                  // by its JSON name
		Port: gaffer.Index(gaffer.Field[[]int](server.Result(), "ports"), 1), // element 1 of a field
	})
	jc.AddChild(server)
	server.AddChild(dial) // a promise is read only by a job that runs after its job
	return gaffer.Forward(jc, dial.Result())
}, gaffer.Cores(0.1), gaffer.Memory("16Mi"), gaffer.Disk("1Mi"))

// Field and Index are promises of parts of a struct result: a field by
// its JSON name, an element of a slice.
func ExampleField() {
	dir, err := os.MkdirTemp("", "gaffer-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	leader, err := gaffer.NewLeader(gaffer.Config{Store: filepath.Join(dir, "workflow.db")})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer leader.Close()

	url, err := gaffer.Run(context.Background(), leader, exDeploy.New("db"))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(url)
	// Output: https://db.internal:443
}

// exWords splits a line into its words.
var exWords = gaffer.MustRegister("example.promise.words", func(ctx context.Context, jc *gaffer.JobContext, line string) ([]string, error) {
	return strings.Fields(line), nil
}, gaffer.Cores(0.1), gaffer.Memory("16Mi"), gaffer.Disk("1Mi"))

// exUpper capitalises one word.
var exUpper = gaffer.MustRegister("example.promise.upper", func(ctx context.Context, jc *gaffer.JobContext, word string) (string, error) {
	return strings.ToUpper(word), nil
}, gaffer.Cores(0.1), gaffer.Memory("16Mi"), gaffer.Disk("1Mi"))

// exSecondWord splits a line and, after that, capitalises its second
// word: exUpper's whole input is a promise of one element of exWords'
// result.
var exSecondWord = gaffer.MustRegister("example.promise.secondword", func(ctx context.Context, jc *gaffer.JobContext, line string) (string, error) {
	words := exWords.New(line)
	upper := exUpper.NewFrom(gaffer.Index(words.Result(), 1))
	jc.AddChild(words)
	words.AddChild(upper)
	return gaffer.Forward(jc, upper.Result())
}, gaffer.Cores(0.1), gaffer.Memory("16Mi"), gaffer.Disk("1Mi"))

// Index is a promise of one element of a promised slice.
func ExampleIndex() {
	dir, err := os.MkdirTemp("", "gaffer-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	leader, err := gaffer.NewLeader(gaffer.Config{Store: filepath.Join(dir, "workflow.db")})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer leader.Close()

	word, err := gaffer.Run(context.Background(), leader, exSecondWord.New("the quick brown fox"))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(word)
	// Output: QUICK
}

// exCountWords counts the words of a text: a map result.
var exCountWords = gaffer.MustRegister("example.promise.countwords", func(ctx context.Context, jc *gaffer.JobContext, text string) (map[string]int, error) {
	counts := map[string]int{}
	for _, w := range strings.Fields(text) {
		counts[w]++
	}
	return counts, nil
}, gaffer.Cores(0.1), gaffer.Memory("16Mi"), gaffer.Disk("1Mi"))

// exTimes describes a count.
var exTimes = gaffer.MustRegister("example.promise.times", func(ctx context.Context, jc *gaffer.JobContext, n int) (string, error) {
	return fmt.Sprintf("%d times", n), nil
}, gaffer.Cores(0.1), gaffer.Memory("16Mi"), gaffer.Disk("1Mi"))

// exHowOften counts the words of a text and, after that, describes the
// count of one word: exTimes takes a promise of one value of the map.
var exHowOften = gaffer.MustRegister("example.promise.howoften", func(ctx context.Context, jc *gaffer.JobContext, text string) (string, error) {
	counts := exCountWords.New(text)
	times := exTimes.NewFrom(gaffer.Key(counts.Result(), "the"))
	jc.AddChild(counts)
	counts.AddChild(times)
	return gaffer.Forward(jc, times.Result())
}, gaffer.Cores(0.1), gaffer.Memory("16Mi"), gaffer.Disk("1Mi"))

// Key is a promise of the value under one key of a promised map.
func ExampleKey() {
	dir, err := os.MkdirTemp("", "gaffer-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	leader, err := gaffer.NewLeader(gaffer.Config{Store: filepath.Join(dir, "workflow.db")})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer leader.Close()

	got, err := gaffer.Run(context.Background(), leader, exHowOften.New("the cat saw the dog and the bird"))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(`"the":`, got)
	// Output: "the": 3 times
}
