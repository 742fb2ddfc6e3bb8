package nodeid

import (
	"slices"
	"strconv"
	"strings"
)

// ID identifies a node of the cluster. IDs start at 1 and are never
// reused; 0 is no node.
type ID int32

// List lists node IDs for a message, in the order given: "1, 2, 3".
func List(ids []ID) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.FormatInt(int64(id), 10)
	}
	return strings.Join(parts, ", ")
}

// Names names nodes the way kvnode's messages do: "node 3", "nodes 1, 2,
// 5" (sorted; ids is not modified), "none" for no node.
func Names(ids []ID) string {
	switch len(ids) {
	case 0:
		return "none"
	case 1:
		return "node " + List(ids)
	}
	ids = slices.Clone(ids)
	slices.Sort(ids)
	return "nodes " + List(ids)
}
