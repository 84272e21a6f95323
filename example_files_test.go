package gaffer_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/gafferhq/gaffer"
)

// exReadFile reads a file of the workflow's file store.
var exReadFile = gaffer.MustRegister("example.readfile", func(ctx context.Context, jc *gaffer.JobContext, id gaffer.FileID) (string, error) {
	files, err := jc.Files()
	if err != nil {
		return "", err
	}
	r, err := files.Open(id)
	if err != nil {
		return "", err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	return string(b), err
}, gaffer.Cores(0.1), gaffer.Memory("16Mi"), gaffer.Disk("1Mi"))

// exWriteFile writes its input into the file store and passes the file's
// ID to a child, which reads it back.
var exWriteFile = gaffer.MustRegister("example.writefile", func(ctx context.Context, jc *gaffer.JobContext, text string) (string, error) {
	files, err := jc.Files()
	if err != nil {
		return "", err
	}
	id, err := files.Write(ctx, strings.NewReader(text))
	if err != nil {
		return "", err
	}
	reader := exReadFile.New(id)
	jc.AddChild(reader)
	return gaffer.Forward(jc, reader.Result())
}, gaffer.Cores(0.1), gaffer.Memory("16Mi"), gaffer.Disk("1Mi"))

// A job writes a file into the workflow's file store and hands its FileID
// to a later job, which may run on another machine that shares the store.
func ExampleJobContext_Files() {
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

	got, err := gaffer.Run(context.Background(), leader, exWriteFile.New("hello through the file store"))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(got)
	// Output: hello through the file store
}
