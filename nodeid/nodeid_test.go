package nodeid

import (
	"slices"
	"testing"
)

func TestListAndNames(t *testing.T) {
	for _, c := range []struct {
		ids         []ID
		list, names string
	}{
		{nil, "", "none"},
		{[]ID{7}, "7", "node 7"},
		{[]ID{3, 1, 2}, "3, 1, 2", "nodes 1, 2, 3"},
	} {
		before := slices.Clone(c.ids)
		if got := List(c.ids); got != c.list {
			t.Errorf("List(%v) = %q, want %q", c.ids, got, c.list)
		}
		if got := Names(c.ids); got != c.names {
			t.Errorf("Names(%v) = %q, want %q", c.ids, got, c.names)
		}
		if !slices.Equal(c.ids, before) {
			t.Errorf("Names sorted its argument in place: %v", c.ids)
		}
	}
}
