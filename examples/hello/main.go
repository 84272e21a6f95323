// Command hello is the smallest gaffer workflow: a job that greets, a
// child that shouts the greeting, and the shout as the workflow's value.
//
//	go run ./examples/hello -name world
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/gafferhq/gaffer"
)

// Shout upper-cases its input.
var Shout = gaffer.MustRegister("hello.shout", func(ctx context.Context, jc *gaffer.JobContext, s string) (string, error) {
	jc.Logger().Info("shouting", "text", s)
	return strings.ToUpper(s) + "!", nil
}, gaffer.Cores(0.1), gaffer.Memory("16Mi"), gaffer.Disk("1Mi"))

// Greet makes a greeting and has a child shout it; its own value is the
// child's.
var Greet = gaffer.MustRegister("hello.greet", func(ctx context.Context, jc *gaffer.JobContext, name string) (string, error) {
	shout := Shout.New("hello, " + name)
	jc.AddChild(shout)
	return gaffer.Forward(jc, shout.Result())
}, gaffer.Cores(0.1), gaffer.Memory("16Mi"), gaffer.Disk("1Mi"))

func main() {
	gaffer.ServeWorker()
	name := flag.String("name", "world", "who to greet")
	flag.Parse()
	// run returns rather than exits, so that its deferred clean-up runs.
	if err := run(*name); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(name string) error {
	dir, err := os.MkdirTemp("", "gaffer-hello-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	leader, err := gaffer.NewLeader(gaffer.Config{Store: filepath.Join(dir, "hello.db")})
	if err != nil {
		return err
	}
	defer leader.Close()
	out, err := gaffer.Run(context.Background(), leader, Greet.New(name))
	if err != nil {
		return err
	}
	fmt.Println(out)
	return nil
}
