//go:build !linux

package spool

import (
	"errors"
	"os"
)

var errNoAnonymous = errors.New("anonymous files not supported")

func openAnonymous(dir string) (*os.File, error) { return nil, errNoAnonymous }

func anonymousUnsupported(err error) bool { return errors.Is(err, errNoAnonymous) }
