package lockfile

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// helperEnv selects a role for the test binary when a test re-executes it
// as a second process.
const helperEnv = "STRATA_LOCKFILE_HELPER"

// TestHelperProcess is not a test: it runs in a child process started by
// the tests below and does what STRATA_LOCKFILE_HELPER says.
func TestHelperProcess(t *testing.T) {
	role := os.Getenv(helperEnv)
	if role == "" {
		t.Skip("helper process only")
	}
	lockPath := os.Getenv("LOCK_PATH")
	l, err := Get(lockPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	switch role {
	case "append":
		// Append records of several small writes each under the lock; an
		// interleaving process would split them.
		out := os.Getenv("OUT_PATH")
		tag := os.Getenv("TAG")
		for i := 0; i < 20; i++ {
			l.Lock()
			f, err := os.OpenFile(out, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
			if err != nil {
				os.Exit(3)
			}
			for j := 0; j < 5; j++ {
				fmt.Fprint(f, tag)
				time.Sleep(200 * time.Microsecond)
			}
			fmt.Fprintln(f)
			f.Close()
			l.Unlock()
		}
	case "record":
		l.Lock()
		lw, err := l.RecordWrite()
		l.Unlock()
		if err != nil {
			os.Exit(3)
		}
		fmt.Print(lw.String())
	case "hold", "hold-read":
		if role == "hold" {
			l.Lock()
		} else {
			l.RLock()
		}
		if err := os.WriteFile(os.Getenv("READY_PATH"), nil, 0o644); err != nil {
			os.Exit(3)
		}
		// Hold until the parent closes our stdin.
		_, _ = bytes.NewBuffer(nil).ReadFrom(os.Stdin)
	case "try":
		if err := l.TryLock(); err != nil {
			if errors.Is(err, ErrWouldBlock) {
				fmt.Print("busy")
				os.Exit(0)
			}
			os.Exit(3)
		}
		fmt.Print("locked")
		l.Unlock()
	}
	os.Exit(0)
}

func helper(t *testing.T, role, lockPath string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+role, "LOCK_PATH="+lockPath)
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// holdInChild starts a child that holds the lock (write or read) until the
// returned release function runs.
func holdInChild(t *testing.T, role, lockPath string) (release func()) {
	t.Helper()
	ready := filepath.Join(t.TempDir(), "ready")
	cmd := helper(t, role, lockPath, "READY_PATH="+ready)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatal("child never took the lock")
		}
		time.Sleep(10 * time.Millisecond)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			stdin.Close()
			if err := cmd.Wait(); err != nil {
				t.Errorf("holder child: %v", err)
			}
		})
	}
	t.Cleanup(release)
	return release
}

func TestGetSameObject(t *testing.T) {
	dir := t.TempDir()
	a, err := Get(filepath.Join(dir, "sub", "x.lock"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Get(filepath.Join(dir, "sub", ".", "x.lock"))
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Fatal("two objects for one path")
	}
	st, err := os.Stat(a.Path())
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm()&^0o644 != 0 {
		t.Errorf("lock file mode %v, want at most 0644", st.Mode().Perm())
	}
}

func TestInProcessExclusion(t *testing.T) {
	l, err := Get(filepath.Join(t.TempDir(), "x.lock"))
	if err != nil {
		t.Fatal(err)
	}

	// Writers exclude each other: an unprotected counter stays exact.
	var counter int
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				l.Lock()
				v := counter
				time.Sleep(time.Microsecond)
				counter = v + 1
				l.Unlock()
			}
		}()
	}
	wg.Wait()
	if counter != 1600 {
		t.Fatalf("counter = %d, want 1600", counter)
	}

	// Readers share; a writer waits for them; try-locks report ErrWouldBlock.
	l.RLock()
	l.RLock()
	if err := l.TryRLock(); err != nil {
		t.Fatalf("TryRLock with readers: %v", err)
	}
	if err := l.TryLock(); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("TryLock with readers = %v, want ErrWouldBlock", err)
	}
	got := make(chan struct{})
	go func() {
		l.Lock()
		close(got)
		l.Unlock()
	}()
	l.RUnlock()
	l.RUnlock()
	select {
	case <-got:
		t.Fatal("writer got the lock while a reader held it")
	case <-time.After(50 * time.Millisecond):
	}
	l.RUnlock()
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("writer never got the lock")
	}

	if err := l.TryLock(); err != nil {
		t.Fatalf("TryLock on free lock: %v", err)
	}
	if err := l.TryRLock(); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("TryRLock while write-locked = %v, want ErrWouldBlock", err)
	}
	l.Unlock()
}

func TestTwoProcessesSerialiseWrites(t *testing.T) {
	dir := t.TempDir()
	lockPath := filepath.Join(dir, "x.lock")
	out := filepath.Join(dir, "out")
	var cmds []*exec.Cmd
	for _, tag := range []string{"a", "b", "c"} {
		cmd := helper(t, "append", lockPath, "OUT_PATH="+out, "TAG="+tag)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	for _, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("child: %v", err)
		}
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 60 {
		t.Fatalf("%d lines, want 60", len(lines))
	}
	for i, line := range lines {
		if line != strings.Repeat(line[:1], 5) {
			t.Fatalf("line %d = %q: writes interleaved", i, line)
		}
	}
}

func TestTokenSeenByOtherProcess(t *testing.T) {
	l, err := Get(filepath.Join(t.TempDir(), "x.lock"))
	if err != nil {
		t.Fatal(err)
	}

	l.RLock()
	zero, err := l.GetLastWrite()
	l.RUnlock()
	if err != nil {
		t.Fatal(err)
	}
	if !zero.IsZero() {
		t.Fatalf("empty file token = %v, want zero", zero)
	}

	l.Lock()
	mine, err := l.RecordWrite()
	l.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	l.RLock()
	changed, err := l.ModifiedSince(mine)
	l.RUnlock()
	if err != nil || changed {
		t.Fatalf("ModifiedSince(own token) = %v, %v; want false", changed, err)
	}

	out, err := helper(t, "record", l.Path()).Output()
	if err != nil {
		t.Fatal(err)
	}
	l.RLock()
	defer l.RUnlock()
	changed, err = l.ModifiedSince(mine)
	if err != nil || !changed {
		t.Fatalf("ModifiedSince after child write = %v, %v; want true", changed, err)
	}
	cur, err := l.GetLastWrite()
	if err != nil {
		t.Fatal(err)
	}
	if cur.String() != string(out) {
		t.Fatalf("token %s, child wrote %s", cur, out)
	}
	st, err := os.Stat(l.Path())
	if err != nil || st.Size() != TokenSize {
		t.Fatalf("lock file size %v (%v), want %d", st.Size(), err, TokenSize)
	}
}

func TestTryLockAcrossProcesses(t *testing.T) {
	tests := []struct {
		name      string
		childRole string
		wantTry   error // for our TryLock
		wantTryR  error // for our TryRLock
	}{
		{name: "child writes", childRole: "hold", wantTry: ErrWouldBlock, wantTryR: ErrWouldBlock},
		{name: "child reads", childRole: "hold-read", wantTry: ErrWouldBlock, wantTryR: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := Get(filepath.Join(t.TempDir(), "x.lock"))
			if err != nil {
				t.Fatal(err)
			}
			release := holdInChild(t, tc.childRole, l.Path())

			if err := l.TryLock(); !errors.Is(err, tc.wantTry) || (tc.wantTry == nil && err != nil) {
				t.Fatalf("TryLock = %v, want %v", err, tc.wantTry)
			}
			err = l.TryRLock()
			if tc.wantTryR == nil {
				if err != nil {
					t.Fatalf("TryRLock = %v, want nil", err)
				}
				l.RUnlock()
			} else if !errors.Is(err, tc.wantTryR) {
				t.Fatalf("TryRLock = %v, want %v", err, tc.wantTryR)
			}

			// A blocking Lock waits for the child and then succeeds.
			got := make(chan struct{})
			go func() {
				l.Lock()
				close(got)
			}()
			select {
			case <-got:
				t.Fatal("Lock succeeded while the child held the lock")
			case <-time.After(100 * time.Millisecond):
			}
			release()
			select {
			case <-got:
			case <-time.After(10 * time.Second):
				t.Fatal("Lock never succeeded after the child released")
			}

			// While we hold it, the child's TryLock reports busy.
			out, err := helper(t, "try", l.Path()).Output()
			l.Unlock()
			if err != nil || string(out) != "busy" {
				t.Fatalf("child TryLock while we hold = %q, %v; want busy", out, err)
			}
			out, err = helper(t, "try", l.Path()).Output()
			if err != nil || string(out) != "locked" {
				t.Fatalf("child TryLock after release = %q, %v; want locked", out, err)
			}
		})
	}
}
