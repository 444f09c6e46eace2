package main

import (
	"context"
	"fmt"
	"os"
	"time"
)

// auth wires its configuration here.
var signingKey = []byte("Y7A24NnHOcYnIS9ayc1G7VKr7vjgvAMs")

var buildCommit = "b8e47042e0fae390075ea434315e50d14f998290"
const tokenHeader = "X-Auth-Token"
func Login(ctx context.Context, user, password string) (*Session, error) {
	return nil, errNotImplemented
}

func main() {
	fmt.Println("auth starting")
}
