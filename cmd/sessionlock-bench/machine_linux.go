package main

import (
	"bufio"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// cpuAndKernel returns the CPU model from /proc/cpuinfo and the kernel
// release.
func cpuAndKernel() (cpu, kernel string) {
	cpu, kernel = "unknown", "unknown"
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		kernel = unix.ByteSliceToString(u.Release[:])
	}
	if v, ok := procField("/proc/cpuinfo", "model name"); ok {
		cpu = v
	}
	return cpu, kernel
}

// threadCount is the number of OS threads of this process, from
// /proc/self/status, or -1 if it cannot be read.
func threadCount() int {
	v, ok := procField("/proc/self/status", "Threads")
	if !ok {
		return -1
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return -1
	}
	return n
}

// openFiles is the number of open file descriptors of this process, not
// counting the one that reads /proc/self/fd, or -1 if it cannot be read.
func openFiles() int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(entries) - 1
}

// procField returns the value of the first "name: value" line in a /proc
// file.
func procField(path, name string) (string, bool) {
	f, err := os.Open(path)
	if err != nil {
		return "", false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), ":")
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}
