// Package hashbench measures the content digest that sessionlock uses
// (SHA-256 from the standard library) against one fast alternative, BLAKE3
// (github.com/zeebo/blake3), on buffers the size of a small and a large
// session file. It has no code of its own; run
//
//	go test -bench . ./hashbench
//
// and compare the MB/s columns.
package hashbench
