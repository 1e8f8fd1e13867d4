package sessionlock

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is the kernel's USER_HZ, the unit of a process's start time in
// /proc/<pid>/stat; it is 100 on every Linux architecture Go supports.
const clockTicks = 100

// processStartedAfter reports whether the process with this pid started
// later than since (with a second of slack for clock granularity), which
// means the pid was recycled for another process. It answers false when it
// cannot tell.
func processStartedAfter(pid int, since time.Time) bool {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The command name in parentheses may contain spaces; fields start
	// after the last closing parenthesis. starttime is field 22 of the
	// line, the 20th after the name.
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return false
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 20 {
		return false
	}
	ticks, err := strconv.ParseInt(fields[19], 10, 64)
	if err != nil {
		return false
	}
	boot, ok := bootTime()
	if !ok {
		return false
	}
	started := boot.Add(time.Duration(ticks) * time.Second / clockTicks)
	return started.After(since.Add(time.Second))
}

// bootTime reads the boot time from /proc/stat.
func bootTime() (time.Time, bool) {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}, false
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			sec, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return time.Time{}, false
			}
			return time.Unix(sec, 0), true
		}
	}
	return time.Time{}, false
}
