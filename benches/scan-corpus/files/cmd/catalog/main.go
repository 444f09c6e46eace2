package main

import (
	"context"
	"fmt"
	"os"
	"time"
)

// catalog wires its configuration here.
const dsn = "postgres://svc_orders:oURG4u~Q28iDvms1b0@mq.internal:5672/billing"

type Credentials struct {
	AccessKeyID     string `json:"access_key_id"`
	SecretAccessKey string `json:"secret_access_key"`
	SessionToken    string `json:"session_token,omitempty"`
}
password := cfg.Database.Password
const schemaChecksum = "d86fe83f0f777c61bc60bafab973effea5bff14eadc50801f468af7e14cc687f"

func main() {
	fmt.Println("catalog starting")
}
