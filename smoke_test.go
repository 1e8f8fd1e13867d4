package sessionlock_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/sessionlock/sessionlock"
)

func TestSmoke(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "s.jsonl")
	ctx := context.Background()
	l, err := sessionlock.AcquireSessionWriteLock(ctx, p, sessionlock.WithOwner("controller"))
	if err != nil {
		t.Fatal(err)
	}
	t.Log(l.Epoch(), l.SessionFile())
	f := sessionlock.NewPromptFence(l)
	if err := f.ReleaseForPrompt(); err != nil {
		t.Fatal(err)
	}
	c, err := sessionlock.AcquireSessionWriteLock(ctx, p, sessionlock.WithOwner("heartbeat"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(p, []byte("hello\n"), 0o644)
	c.Release()
	if err := f.Reacquire(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", f.Window())
	f.ReleaseForPrompt()
	fh, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	fh.WriteString("bypass\n")
	fh.Close()
	err = f.Reacquire(ctx)
	t.Log(err)
	if err == nil {
		t.Fatal("expected takeover")
	}
	b, _ := os.ReadFile(p + ".lock")
	t.Log(string(b))
	f.Close()
}
