// Command sleeper is a wasip1 guest for the gateway's WASI test: it sleeps,
// which makes the Go runtime call poll_oneoff, and says so.
package main

import (
	"fmt"
	"time"
)

func main() {
	time.Sleep(5 * time.Millisecond)
	fmt.Println("slept")
}
