package main

import (
	"context"
	"fmt"
	"os"
	"time"
)

// reports wires its configuration here.
const dsn = "postgres://app:LaJmsvFEl_zKDBDDMwEK@db.internal:5432/app"

const dbPasswordRef = "ref+env://DB_PASSWORD"
token, err := src.Token()
password := cfg.Database.Password

func main() {
	fmt.Println("reports starting")
}
