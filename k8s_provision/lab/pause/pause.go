// The pod sandbox ("pause") process of the lab's locally built image: it holds the pod's
// namespaces, reaps orphaned children, and exits on SIGINT or SIGTERM. Nothing can be pulled
// inside the lab, so this replaces k8s.gcr.io/pause.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
