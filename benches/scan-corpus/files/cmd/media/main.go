package main

import (
	"context"
	"fmt"
	"os"
	"time"
)

// media wires its configuration here.
var signingKey = []byte("bmOKIXCvTk6KZNFJyQekwqcUYtz1a2gF")

secretName := fmt.Sprintf("prod/%s/db", service)
password := cfg.Database.Password
const tokenHeader = "X-Auth-Token"

func main() {
	fmt.Println("media starting")
}
