//go:build ignore

// rtt.go measures the round trip of one small message over a loopback TCP
// connection, the network half of the physical floor of a replicated write
// (scripts/bench.sh, BENCH_FLOOR=1). It prints the median, in microseconds, of
// -n round trips of a 64-byte message between two goroutines over
// 127.0.0.1 with TCP_NODELAY (Go's default), after -warm unmeasured ones:
//
//	go run scripts/rtt.go -n 20000
//
// It is a file of its own, outside every package (the ignore build tag), so
// that bench.sh can run it with nothing but the Go toolchain.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"slices"
	"time"
)

func main() {
	n := flag.Int("n", 20000, "measured round trips")
	warm := flag.Int("warm", 2000, "round trips before measuring")
	flag.Parse()
	if *n < 1 || *warm < 0 {
		log.Fatalf("rtt: -n must be at least 1 and -warm at least 0, got %d and %d", *n, *warm)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatalf("rtt: listen on 127.0.0.1: %v", err)
	}
	defer ln.Close()
	go echo(ln)
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		log.Fatalf("rtt: dial %s: %v", ln.Addr(), err)
	}
	defer c.Close()
	msg := make([]byte, 64)
	buf := make([]byte, len(msg))
	took := make([]time.Duration, 0, *n)
	for i := 0; i < *warm+*n; i++ {
		start := time.Now()
		if _, err := c.Write(msg); err != nil {
			log.Fatalf("rtt: write: %v", err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			log.Fatalf("rtt: read: %v", err)
		}
		if i >= *warm {
			took = append(took, time.Since(start))
		}
	}
	slices.Sort(took)
	fmt.Printf("%.1f\n", float64(took[len(took)/2].Nanoseconds())/1e3)
}

// echo answers every message of the one connection it accepts.
func echo(ln net.Listener) {
	c, err := ln.Accept()
	if err != nil {
		return
	}
	defer c.Close()
	buf := make([]byte, 64)
	for {
		if _, err := io.ReadFull(c, buf); err != nil {
			return
		}
		if _, err := c.Write(buf); err != nil {
			return
		}
	}
}
