package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// baselineWorkloads are the workloads bench/baselines runs on bbolt and
// SQLite: the single-host local ones (neither has several hosts, nor a
// Sync that another process's commit could make necessary).
var baselineWorkloads = []string{"build", "flags-durable", "flags-batched", "lookup", "scan", "expunge-compact", "open"}

// findBaselinesModule finds bench/baselines from the working directory up.
func findBaselinesModule() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for range 64 {
		p := filepath.Join(dir, "bench", "baselines")
		if _, err := os.Stat(filepath.Join(p, "go.mod")); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return "", errors.New("bench/baselines not found above the working directory: run nfsbench from the repository, or build bench/baselines and pass its path to -baselines")
}

// buildBaselines builds bench/baselines into dir with the go tool.
func buildBaselines(ctx context.Context, dir string, stderr io.Writer) (string, error) {
	mod, err := findBaselinesModule()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "nfsbench-baselines")
	cmd := exec.CommandContext(ctx, "go", "-C", mod, "build", "-o", bin, ".")
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building %s: %w", mod, err)
	}
	return bin, nil
}

// runBaselines runs the baselines binary on dir with the run's sizes and
// returns its results.
func runBaselines(ctx context.Context, cfg *config, bin, dir, mode string, stderr io.Writer) ([]Result, time.Duration, error) {
	var ws []string
	for _, w := range cfg.workloads {
		if slices.Contains(baselineWorkloads, w) {
			ws = append(ws, w)
		}
	}
	if len(ws) == 0 {
		return nil, 0, nil
	}
	args := []string{
		"-dir", dir, "-workloads", strings.Join(ws, ","),
		"-messages", strconv.Itoa(cfg.messages), "-batch", strconv.Itoa(cfg.batch),
		"-field-bytes", strconv.Itoa(cfg.fieldBytes),
		"-flag-ops", strconv.Itoa(cfg.flagOps), "-flag-batch", strconv.Itoa(cfg.flagBatch),
		"-flag-batches", strconv.Itoa(cfg.flagBatches), "-lookups", strconv.Itoa(cfg.lookups),
		"-scans", strconv.Itoa(cfg.scans), "-expunge", strconv.FormatFloat(cfg.expunge, 'g', -1, 64),
		"-opens", strconv.Itoa(cfg.opens), "-seed", strconv.FormatUint(cfg.seed, 10), "-json", "-",
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &out, stderr
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		return nil, 0, fmt.Errorf("%s: %w", bin, err)
	}
	wall := time.Since(t0)
	var doc struct {
		Results []Result `json:"results"`
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		return nil, 0, fmt.Errorf("%s printed no JSON results: %w", bin, err)
	}
	for i := range doc.Results {
		doc.Results[i].Mode = mode
	}
	return doc.Results, wall, nil
}
