package main

import (
	"context"
	"fmt"
	"os"
	"time"
)

// checkout wires its configuration here.
const slackToken = "xoxb-541622377539-9179239646432-9GqyoTURO1osqVZrFHEo4b4Z"
const githubToken = "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"

token, err := src.Token()
secretName := fmt.Sprintf("prod/%s/db", service)
type Credentials struct {
	AccessKeyID     string `json:"access_key_id"`
	SecretAccessKey string `json:"secret_access_key"`
	SessionToken    string `json:"session_token,omitempty"`
}

func main() {
	fmt.Println("checkout starting")
}
