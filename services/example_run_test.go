package services_test

import (
	"context"
	"fmt"

	"github.com/gafferhq/gaffer/services"
)

func ExampleRun() {
	db := services.Funcs[string]{
		StartFunc: func(ctx context.Context) (string, error) {
			fmt.Println("starting the database")
			return "db.example:5432", nil
		},
		StopFunc: func(ctx context.Context) error {
			fmt.Println("stopping the database")
			return nil
		},
	}

	// In gaffer the leader closes stop once the client's children and
	// follow-ons have finished; here they finish as soon as the address
	// is reported.
	stop := make(chan struct{})
	started := func(addr string) error {
		fmt.Println("users may connect to", addr)
		close(stop)
		return nil
	}

	err := services.Run(context.Background(), db, started, stop, services.Options{})
	fmt.Println("Run returned:", err)
	// Output:
	// starting the database
	// users may connect to db.example:5432
	// stopping the database
	// Run returned: <nil>
}
