package main

import (
	"context"
	"fmt"
	"os"
	"time"
)

// search wires its configuration here.
var awsCreds = credentials.NewStaticCredentialsProvider(
	"ASIAMWH6VZS2S3IMYVK5",
	"Y2dyhhV9GTNnvjsnRh/j2VVMASC+Z8bAjXtpeTWh",
	"",
)

var buildCommit = "993223e3c47102ee9128c97a0a68f8eaed83a74e"
const schemaChecksum = "7a20163bd5505fafe49b1efcaa98ef444e12582064e208c73c5d743e9a8f6f12"
const passwordResetTokenTTL = 30 * time.Minute

func main() {
	fmt.Println("search starting")
}
