//go:build !unix || race

package spool

import "errors"

// mapping reports whether pages maps slices: false without mmap, and under
// the race detector (pages.go).
const mapping = false

var pageSize = 4096

func mapAnon(int) ([]byte, error) { return nil, errors.ErrUnsupported }

func unmap([]byte) error { return errors.ErrUnsupported }

func release([]byte) {}
