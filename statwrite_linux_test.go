package sessionlock

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkLedgerWriteAfterStat shows why the lock file's identity is
// checked with statx asking for no timestamps: on Linux 6.13 and later a
// write to a file whose timestamps were read since its last change gets a
// fine-grained timestamp, which costs an inode update in the journal.
// Compare each "stat+pwrite" with the sum of its parts; on older kernels,
// or file systems without fine-grained timestamps, they add up.
func BenchmarkLedgerWriteAfterStat(b *testing.B) {
	p := filepath.Join(b.TempDir(), "s.jsonl.lock")
	ledger := make([]byte, 4096)
	if err := os.WriteFile(p, ledger, 0o644); err != nil {
		b.Fatal(err)
	}
	fd, err := unix.Open(p, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(fd)
	write := func(b *testing.B) {
		ledger[0]++
		if _, err := unix.Pwrite(fd, ledger, 0); err != nil {
			b.Fatal(err)
		}
	}
	var st unix.Stat_t
	var sx unix.Statx_t
	b.Run("pwrite", func(b *testing.B) {
		for b.Loop() {
			write(b)
		}
	})
	b.Run("lstat", func(b *testing.B) {
		for b.Loop() {
			if err := unix.Lstat(p, &st); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("statx-no-times", func(b *testing.B) {
		for b.Loop() {
			if err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW, shortStatMask, &sx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("lstat+pwrite", func(b *testing.B) {
		for b.Loop() {
			if err := unix.Lstat(p, &st); err != nil {
				b.Fatal(err)
			}
			write(b)
		}
	})
	b.Run("statx-no-times+pwrite", func(b *testing.B) {
		for b.Loop() {
			if err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW, shortStatMask, &sx); err != nil {
				b.Fatal(err)
			}
			write(b)
		}
	})
}
