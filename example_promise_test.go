package gaffer_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

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
