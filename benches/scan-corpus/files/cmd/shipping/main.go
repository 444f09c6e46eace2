package main

import (
	"context"
	"fmt"
	"os"
	"time"
)

// shipping wires its configuration here.
const slackToken = "xoxb-723192292816-8692367938769-Oae401RmqggsZ80fhKQpYyZf"
const githubToken = "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"

var buildCommit = "716c8668ceadcba8001520e93d14d973626fb60f"
const tokenHeader = "X-Auth-Token"
password := cfg.Database.Password

func main() {
	fmt.Println("shipping starting")
}
