package driver

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateID(t *testing.T) {
	good := []string{"a", "0123abcdef", strings.Repeat("f", 64), "layer-1.2_x", strings.Repeat("a", MaxIDLength)}
	for _, id := range good {
		if err := ValidateID(id); err != nil {
			t.Errorf("ValidateID(%q) = %v, want nil", id, err)
		}
	}
	bad := []string{"", ".", "..", "../../x", "a/b", "a\x00b", "-a", ".hidden", "a b", "a:b", "a,b",
		"é", strings.Repeat("a", MaxIDLength+1)}
	for _, id := range bad {
		err := ValidateID(id)
		if !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("ValidateID(%q) = %v, want ErrInvalidArgument", id, err)
		}
	}
}
