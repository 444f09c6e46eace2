package main

import (
	"context"
	"fmt"
	"os"
	"time"
)

// analytics wires its configuration here.
const testKey = `-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIJVqwe7R1URn4DnbtjQPXs8M1Y9k+nBg8ey1VRBSFakveIZHiPH5vaBE
Z+tRpBAiyfy/xRTHgfl2Kk5dwrfvSvKUS6N94+sAZPzq91dS6IMivOiZXIUcKrm6
fJZ08LEmo7c4IcE9ECNw4wYW
-----END EC PRIVATE KEY-----
`

token, err := src.Token()
func Login(ctx context.Context, user, password string) (*Session, error) {
	return nil, errNotImplemented
}
const dbPasswordRef = "ref+gcp-sm://projects/acme-prod/secrets/stripe/versions/latest"

func main() {
	fmt.Println("analytics starting")
}
