package driver

import (
	"fmt"
	"strings"
)

// MaxIDLength is the longest layer id accepted.
const MaxIDLength = 128

// ValidateID checks that id can safely name a directory below the driver's
// home: 1 to MaxIDLength characters of [A-Za-z0-9_.-], starting with a letter
// or digit. It returns an error matching ErrInvalidArgument otherwise.
func ValidateID(id string) error {
	if id == "" {
		return fmt.Errorf("layer id is empty: %w", ErrInvalidArgument)
	}
	if len(id) > MaxIDLength {
		return fmt.Errorf("layer id %.20q... is longer than %d: %w", id, MaxIDLength, ErrInvalidArgument)
	}
	if !isAlnum(id[0]) {
		return fmt.Errorf("layer id %q must start with a letter or digit: %w", id, ErrInvalidArgument)
	}
	if i := strings.IndexFunc(id, func(r rune) bool {
		return r > 0x7f || !(isAlnum(byte(r)) || r == '_' || r == '.' || r == '-')
	}); i >= 0 {
		return fmt.Errorf("layer id %q has character %q not in [A-Za-z0-9_.-]: %w", id, id[i], ErrInvalidArgument)
	}
	return nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
