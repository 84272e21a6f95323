package gaffer_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gafferhq/gaffer"
	"github.com/gafferhq/gaffer/services"
)

// exSvcCache is a service type whose service lives in its host's memory;
// its Start value is all its users see of it.
var exSvcCache = gaffer.MustRegisterService("example.service.cache", func(ctx context.Context, jc *gaffer.JobContext, name string) (services.Service[string], error) {
	return services.Funcs[string]{
		StartFunc: func(ctx context.Context) (string, error) { return "mem://" + name, nil },
	}, nil
}, exSmall...)

// exSvcUseIn takes the service's value as a promise: the leader fills it
// in once the service has started, before the job is issued.
type exSvcUseIn struct {
	Cache gaffer.Promise[string]
	Key   string
}

var exSvcUse = gaffer.MustRegister("example.service.use", func(ctx context.Context, jc *gaffer.JobContext, in exSvcUseIn) (string, error) {
	cache, err := in.Cache.Get()
	if err != nil {
		return "", err
	}
	return "looked up " + in.Key + " in " + cache, nil
}, exSmall...)

// exSvcRoot gives its subtree a cache: the service starts after this
// body, before the child, and stops once the child has finished.
var exSvcRoot = gaffer.MustRegister("example.service.root", func(ctx context.Context, jc *gaffer.JobContext, key string) (string, error) {
	cache := exSvcCache.New("genes")
	jc.AddService(cache)
	use := exSvcUse.New(exSvcUseIn{Cache: cache.Result(), Key: key})
	jc.AddChild(use)
	return gaffer.Forward(jc, use.Result())
}, exSmall...)

// A job adds a service for its children; a child takes what the
// service's Start returned (an address, typically) as a promise.
func Example_service() {
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

	out, err := gaffer.Run(context.Background(), leader, exSvcRoot.New("BRCA2"))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(out)
	// Output: looked up BRCA2 in mem://genes
}
