package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

// The guest's /init (e2e/guest/init.sh) loads the modules, brings up the
// slirp NIC, mounts the run directory over 9p at /lab and calls
// "nfse2e job". The job reads /lab/<dir>/job.conf (written by e2e/run),
// steps the clock to the host's, mounts the export, runs
// "/bin/nfse2e ARGS..." with the mount as its working directory, and
// leaves stdout, stderr, result.env, mountstats.{before,after} and
// rpc-ops.txt in /lab/<dir>/.

// boottime returns seconds since boot (CLOCK_BOOTTIME).
func boottime() float64 {
	var ts syscall.Timespec
	const clockBoottime = 7
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockBoottime, uintptr(unsafe.Pointer(&ts)), 0)
	return float64(ts.Sec) + float64(ts.Nsec)/1e9
}

func mountRetry(source, target, fstype, opts string, timeout time.Duration) error {
	if err := os.MkdirAll(target, 0o755); err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for attempt := 1; ; attempt++ {
		err := syscall.Mount(source, target, fstype, 0, opts)
		if err == nil {
			return nil
		}
		retryable := err == syscall.ECONNREFUSED || err == syscall.ETIMEDOUT ||
			err == syscall.EHOSTUNREACH || err == syscall.ENETUNREACH ||
			err == syscall.EIO || err == syscall.EAGAIN || err == syscall.ENOENT
		if !retryable || time.Now().After(deadline) {
			return fmt.Errorf("mount -t %s -o %s %s %s (attempt %d): %w", fstype, opts, source, target, attempt, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// stripModsig drops the appended module signature so that the emulated
// guest does not check RSA signatures at insmod (the kernel has
// CONFIG_MODULE_SIG_FORCE unset; it only taints itself).
func stripModsig(path string) error {
	const marker = "~Module signature appended~\n"
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if !bytes.HasSuffix(data, []byte(marker)) {
		return nil
	}
	n := len(data) - len(marker)
	if n < 12 {
		return fmt.Errorf("%s: short signature trailer", path)
	}
	// struct module_signature { u8 algo, hash, id_type, signer_len, key_id_len; u8 pad[3]; __be32 sig_len; }
	ms := data[n-12 : n]
	sigLen := int(ms[8])<<24 | int(ms[9])<<16 | int(ms[10])<<8 | int(ms[11])
	end := n - 12 - sigLen - int(ms[3]) - int(ms[4])
	if end <= 0 {
		return fmt.Errorf("%s: bad signature length", path)
	}
	return os.WriteFile(path, data[:end], 0o644)
}

// clockOffset estimates host time minus guest time from the mtime the
// host's kernel gives a file on the 9p share: the offset of the sample with
// the smallest round trip, and that round trip.
func clockOffset(path string, samples int) (time.Duration, time.Duration, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	best, off := time.Duration(-1), time.Duration(0)
	for i := 0; i < samples; i++ {
		t1 := time.Now()
		if _, err := f.WriteAt([]byte{byte(i)}, 0); err != nil {
			return 0, 0, err
		}
		var st syscall.Stat_t
		if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
			return 0, 0, err
		}
		rtt := time.Since(t1)
		mt := time.Unix(st.Mtim.Sec, st.Mtim.Nsec)
		if i > 0 && (best < 0 || rtt < best) { // the first write may get a coarse stamp
			best, off = rtt, mt.Sub(t1.Add(rtt/2))
		}
	}
	return off, best, nil
}

func readKV(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && !strings.HasPrefix(k, "#") {
			c[k] = v
		}
	}
	return c, nil
}

func kernelArgs() map[string]string {
	m := map[string]string{}
	data, _ := os.ReadFile("/proc/cmdline")
	for _, f := range strings.Fields(string(data)) {
		if k, v, ok := strings.Cut(f, "="); ok && strings.HasPrefix(k, "e2e.") {
			m[strings.TrimPrefix(k, "e2e.")] = v
		}
	}
	return m
}

func splitNul(data []byte) []string {
	var out []string
	for _, p := range bytes.Split(data, []byte{0}) {
		if len(p) > 0 {
			out = append(out, string(p))
		}
	}
	return out
}

func snapshotStats(dir, suffix string) {
	if b, err := os.ReadFile("/proc/self/mountstats"); err == nil {
		os.WriteFile(filepath.Join(dir, "mountstats."+suffix), b, 0o644)
	}
}

func job() int {
	ka := kernelArgs()
	host, dir := ka["host"], ka["dir"]
	if dir == "" {
		dir = host
	}
	outDir := filepath.Join("/lab", dir)
	conf, err := readKV(filepath.Join(outDir, "job.conf"))
	if err != nil {
		fmt.Println("nfse2e job: cannot read job.conf:", err)
		return 1
	}
	res, _ := os.Create(filepath.Join(outDir, "result.env"))
	defer res.Close()
	mark := func(k string, v any) {
		fmt.Fprintf(res, "%s=%v\n", k, v)
		res.Sync()
	}
	mark("host", host)
	for _, k := range []string{"init", "net"} {
		if b, err := os.ReadFile("/tmp/uptime." + k); err == nil {
			mark("uptime_"+k, strings.TrimSpace(string(b)))
		}
	}
	clockFile := filepath.Join(outDir, ".clock")
	if off, rtt, err := clockOffset(clockFile, 9); err != nil {
		fmt.Println("nfse2e job: clock:", err)
	} else {
		tv := syscall.NsecToTimeval(time.Now().Add(off).UnixNano())
		if err := syscall.Settimeofday(&tv); err != nil {
			fmt.Println("nfse2e job: settimeofday:", err)
		}
		mark("clock_step_ms", fmt.Sprintf("%.3f", float64(off)/1e6))
		mark("clock_sync_rtt_ms", fmt.Sprintf("%.3f", float64(rtt)/1e6))
	}

	mnt := conf["MNT"]
	mark("uptime_mount_start", fmt.Sprintf("%.3f", boottime()))
	err = mountRetry(conf["NFS_SOURCE"], mnt, "nfs", conf["NFS_OPTS"], 60*time.Second)
	mark("uptime_mount_done", fmt.Sprintf("%.3f", boottime()))
	if err != nil {
		fmt.Println("nfse2e job:", err)
		mark("mount_error", strconv.Quote(err.Error()))
		mark("exit_code", 125)
		return 1
	}
	if b, err := os.ReadFile("/proc/mounts"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 4 && f[1] == mnt {
				mark("mount_line", strconv.Quote(l))
			}
		}
	}
	var argv []string
	if b, err := os.ReadFile(filepath.Join(outDir, "argv")); err == nil {
		argv = splitNul(b)
	}
	env := []string{
		"PATH=/bin:/sbin:/usr/bin:/usr/sbin", "HOME=/tmp",
		"E2E_HOST=" + host, "E2E_INDEX=" + ka["index"], "E2E_HOSTS=" + ka["hosts"], "E2E_INC=" + ka["inc"],
		"E2E_MNT=" + mnt, "E2E_OUT=" + outDir, "E2E_SHARED=/lab/shared", "E2E_OPTS=" + conf["NFS_OPTS"],
	}
	stdout, _ := os.Create(filepath.Join(outDir, "stdout"))
	stderr, _ := os.Create(filepath.Join(outDir, "stderr"))
	cmd := exec.Command("/bin/nfse2e", argv...)
	cmd.Env = env
	cmd.Dir = mnt
	cmd.Stdout = io.MultiWriter(stdout, os.Stdout)
	cmd.Stderr = io.MultiWriter(stderr, os.Stdout)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	snapshotStats(outDir, "before")
	timeout, _ := strconv.ParseFloat(conf["TIMEOUT"], 64)
	if timeout <= 0 {
		timeout = 600
	}
	t0 := time.Now()
	mark("uptime_cmd_start", fmt.Sprintf("%.3f", boottime()))
	code := 0
	if err := cmd.Start(); err != nil {
		fmt.Println("nfse2e job: start:", err)
		code = 127
	} else {
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(time.Duration(timeout * float64(time.Second))):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
			mark("timed_out", 1)
			fmt.Printf("nfse2e job: command timed out after %vs\n", timeout)
		}
		code = cmd.ProcessState.ExitCode()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
	}
	mark("cmd_seconds", fmt.Sprintf("%.3f", time.Since(t0).Seconds()))
	if code != 0 {
		// tell the other guests of the run not to wait for this one
		os.WriteFile("/lab/shared/ABORT", []byte(host+"\n"), 0o644)
	}
	stdout.Close()
	stderr.Close()
	snapshotStats(outDir, "after")
	if off, _, err := clockOffset(clockFile, 9); err == nil {
		mark("clock_offset_end_ms", fmt.Sprintf("%.3f", float64(off)/1e6))
	}
	os.Remove(clockFile)
	if b, err := os.ReadFile(filepath.Join(outDir, "mountstats.before")); err == nil {
		if a, err := os.ReadFile(filepath.Join(outDir, "mountstats.after")); err == nil {
			os.WriteFile(filepath.Join(outDir, "rpc-ops.txt"),
				[]byte(diffMountstats(parseMountstats(b), parseMountstats(a), mnt)), 0o644)
		}
	}
	if err := syscall.Unmount(mnt, 0); err != nil {
		fmt.Println("nfse2e job: umount:", err, "- detaching")
		syscall.Unmount(mnt, syscall.MNT_DETACH)
	}
	mark("exit_code", code)
	return code
}
