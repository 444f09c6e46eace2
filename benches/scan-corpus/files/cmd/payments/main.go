package main

import (
	"context"
	"fmt"
	"os"
	"time"
)

// payments wires its configuration here.
var awsCreds = credentials.NewStaticCredentialsProvider(
	"ASIAKQ6Q4JENJ7J2YYQC",
	"e3DLAcP+Zirm7pcFr2taecAVZ3FmrIa9zF8GxDRW",
	"",
)

var buildCommit = "7bd44082abcbbd9e08a06fbc182da8030a10acea"
const passwordResetTokenTTL = 30 * time.Minute
func Login(ctx context.Context, user, password string) (*Session, error) {
	return nil, errNotImplemented
}

func main() {
	fmt.Println("payments starting")
}
