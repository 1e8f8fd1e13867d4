package sessionlock_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/sessionlock/sessionlock"
)

func ExampleAcquireSessionWriteLock() {
	dir, err := os.MkdirTemp("", "sessionlock-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	session := filepath.Join(dir, "session.jsonl")
	ctx := context.Background()

	first, err := sessionlock.AcquireSessionWriteLock(ctx, session, sessionlock.WithOwner("controller"))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := first.Append([]byte(`{"role":"user","text":"hello"}` + "\n")); err != nil {
		log.Fatal(err)
	}
	if err := first.Release(); err != nil {
		log.Fatal(err)
	}

	// The next tenure, in this process or any other, gets the next
	// generation of this session file.
	second, err := sessionlock.AcquireSessionWriteLock(ctx, session, sessionlock.WithOwner("controller"))
	if err != nil {
		log.Fatal(err)
	}
	defer second.Release()
	fmt.Println("generations apart:", second.Epoch()-first.Epoch())
	fmt.Println("lock file:", filepath.Base(second.LockFile()))
	// Output:
	// generations apart: 1
	// lock file: session.jsonl.lock
}

func ExamplePromptFence() {
	dir, err := os.MkdirTemp("", "sessionlock-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	session := filepath.Join(dir, "session.jsonl")
	ctx := context.Background()

	l, err := sessionlock.AcquireSessionWriteLock(ctx, session, sessionlock.WithOwner("controller"))
	if err != nil {
		log.Fatal(err)
	}
	fence := sessionlock.NewPromptFence(l)
	defer fence.Close()
	if _, err := l.Append([]byte(`{"role":"user","text":"hello"}` + "\n")); err != nil {
		log.Fatal(err)
	}

	// The controller lets go of the lock while the model thinks.
	if err := fence.ReleaseForPrompt(); err != nil {
		log.Fatal(err)
	}

	// A co-tenant in the same process appends under its own tenure.
	heartbeat, err := sessionlock.AcquireSessionWriteLock(ctx, session, sessionlock.WithOwner("heartbeat"))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := heartbeat.Append([]byte(`{"type":"heartbeat"}` + "\n")); err != nil {
		log.Fatal(err)
	}
	if err := heartbeat.Release(); err != nil {
		log.Fatal(err)
	}

	// Every change in the window was made under the lock: accepted.
	if err := fence.Reacquire(ctx); err != nil {
		log.Fatal(err)
	}
	w := fence.Window()
	fmt.Println("epoch delta:", w.Delta())
	for _, t := range w.Writers() {
		fmt.Println("written by:", t.Owner)
	}
	// Output:
	// epoch delta: 2
	// written by: heartbeat
}

func ExamplePromptFence_Reacquire_bypass() {
	dir, err := os.MkdirTemp("", "sessionlock-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	session := filepath.Join(dir, "session.jsonl")
	ctx := context.Background()

	l, err := sessionlock.AcquireSessionWriteLock(ctx, session, sessionlock.WithOwner("controller"))
	if err != nil {
		log.Fatal(err)
	}
	fence := sessionlock.NewPromptFence(l)
	defer fence.Close()
	if _, err := l.Append([]byte(`{"role":"user","text":"hello"}` + "\n")); err != nil {
		log.Fatal(err)
	}
	if err := fence.ReleaseForPrompt(); err != nil {
		log.Fatal(err)
	}

	// A writer that never takes the lock appends while it is free.
	f, err := os.OpenFile(session, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintln(f, `{"note":"added by an editor"}`)
	f.Close()

	err = fence.Reacquire(ctx)
	fmt.Println("takeover:", errors.Is(err, sessionlock.ErrSessionTakeover))
	var te *sessionlock.TakeoverError
	if errors.As(err, &te) {
		fmt.Println("cause:", te.Cause)
		fmt.Println("change:", te.Change)
	}

	// The fence holds the lock again, so the controller can reload the
	// session file before it trusts its view.
	fmt.Println("holding the lock:", fence.Lock() != nil)
	// Output:
	// takeover: true
	// cause: bypass
	// change: appended
	// holding the lock: true
}
