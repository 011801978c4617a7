package appendlog

import (
	"errors"
	"strings"
	"testing"

	"github.com/nfsindex/nfsindex/internal/atomicrectest"
)

// TestNoZombieCommit: a commit whose header copy reached the disk but one
// of whose frame sectors did not is not committed (recovery falls back).
// The next commit appends, at the same offset, a record that shares most
// bytes with the lost one. Whatever subset of its sectors a second crash
// keeps, the first commit must not come back: recovery overwrote its
// header copy before appending (writer.go, recoverLog).
func TestNoZombieCommit(t *testing.T) {
	body := strings.Repeat("cached message body ", 80) // about 1600 bytes: four sectors
	zombieStates, explored := 0, 0
	for maskA := 0; ; maskA++ {
		m := atomicrectest.New()
		w := mustCreate(t, m)
		mustAppend(t, w, 1, "committed")
		mustCommit(t, w)
		base := render([]mrec{{DataStart, 1, "committed", 0}})
		mustAppend(t, w, 2, "A"+body)
		m.FailSyncAt = 1
		if err := w.Commit(ctx); !errors.Is(err, ErrBroken) {
			t.Fatal(err)
		}
		m1, n := m.CrashKeep(512, func(i int) bool { return maskA&(1<<i) != 0 })
		if maskA >= 1<<n {
			break
		}
		w1, got := observe(t, m1)
		if render(got) != base {
			continue // A committed whole: nothing to resurrect
		}
		mustAppend(t, w1, 2, "B"+body)
		m1.FailSyncAt = 1
		if err := w1.Commit(ctx); !errors.Is(err, ErrBroken) {
			t.Fatal(err)
		}
		for maskB := 0; ; maskB++ {
			m2, n2 := m1.CrashKeep(512, func(i int) bool { return maskB&(1<<i) != 0 })
			if maskB >= 1<<n2 {
				break
			}
			explored++
			_, got2 := observe(t, m2)
			for _, r := range got2 {
				if strings.HasPrefix(r.Payload, "A") {
					zombieStates++
					t.Errorf("A %b, B %b: the commit recovery saw as not done came back", maskA, maskB)
				}
			}
		}
	}
	if explored == 0 {
		t.Fatal("explored nothing")
	}
	t.Logf("explored %d states, %d zombies", explored, zombieStates)
}
